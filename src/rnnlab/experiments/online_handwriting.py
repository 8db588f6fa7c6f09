"""``online-handwriting``: Hinton's lecture 7e demonstration of Graves' online handwriting
recogniser (Graves et al. 2009), on synthetic pen trajectories: a BLSTM trained with CTC
reads ``(dx, dy, pen_up)`` sequences and writes the characters.

Data (:mod:`rnnlab.data.pen_handwriting`): words and two-word phrases of the default corpus
written with the Hershey ``cursive`` font, randomly slanted, scaled, rotated, with baseline
drift and jitter, resampled to an even pen speed. **Synthetic**: font strokes, not people's
handwriting, so the numbers are not comparable with Graves et al. 2009's IAM-OnDB results
(BLSTM-CTC 20.4% word error rate, 13.9% character error with a language model... on real
whiteboard notes). The corpus words are split into training and held-out words. Tests:
held-out words in the training font, and the training words in a held-out font
(``scriptc``; the package's ``scripts`` is identical to ``cursive``, so it is not used).

Model: one bidirectional LSTM layer, 28 outputs (blank, 26 letters, space), CTC, Adam,
through the one training loop. Decoding: best path and prefix beam search.

Pictures (the lecture's): when each character is emitted (the pen position at each
non-blank spike of the best path, labelled), the outputs of a few memory cells along the
trajectory, and the gradient of the most active output with respect to the (dx, dy)
inputs drawn on the writing. Success: character error rate on held-out words below 0.3
(greedy).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from rnnlab._threads import torch_threads
from rnnlab.experiments import ExperimentConfig, ExperimentResult, register

_QUICK = {"hidden": 16, "steps": 20, "batch": 8, "train": 60, "test": 20, "beam": 4}
_FULL = {"hidden": 64, "steps": 1500, "batch": 16, "train": 3000, "test": 300, "beam": 8}
STEP = 0.08  # pen resampling distance (cap height ~1); inputs are scaled by 1 / STEP


@register("online-handwriting", "BLSTM-CTC reading synthetic cursive pen trajectories (lecture 7e)")
def run(config: ExperimentConfig) -> ExperimentResult:
    """Character error rates of a BLSTM-CTC on held-out words and a held-out font."""
    preset = _QUICK if config.quick else _FULL
    with torch_threads(1):
        return _run(config, preset)


def _sequences(samples):
    from rnnlab.labelling import Sequences

    feats = [f * np.array([1 / STEP, 1 / STEP, 1], dtype=np.float32) for f in samples.features]
    return Sequences(feats, None, samples.transcripts)


def _run(config: ExperimentConfig, preset: dict) -> ExperimentResult:
    from rnnlab.data.pen_handwriting import ALPHABET, corpus_words, decode, make_samples
    from rnnlab.labelling import CTCRecogniser, fit, recognition_errors, transcribe_all

    words = corpus_words()
    rng = np.random.default_rng(1234)  # the word split is fixed, whatever the seed
    order = rng.permutation(len(words))
    n_test = len(words) // 5
    test_words = [words[i] for i in order[:n_test]]
    train_words = [words[i] for i in order[n_test:]]
    s = config.seed
    train_s = make_samples(train_words, preset["train"], ("cursive",), seed=100 + s, step=STEP)
    words_s = make_samples(test_words, preset["test"], ("cursive",), seed=200 + s, step=STEP)
    font_s = make_samples(train_words, preset["test"], ("scriptc",), seed=300 + s, step=STEP)
    train, test_words_seq, test_font_seq = map(_sequences, (train_s, words_s, font_s))

    model = CTCRecogniser(3, len(ALPHABET), hidden_size=preset["hidden"])
    t0 = time.perf_counter()
    fit(model, train, steps=preset["steps"], batch_size=preset["batch"], lr=5e-3, seed=s)
    t_train = time.perf_counter() - t0
    res = {}
    for name, data in (("held_out_words", test_words_seq), ("held_out_font", test_font_seq)):
        greedy = transcribe_all(model, data)
        t0 = time.perf_counter()
        beam = transcribe_all(model, data, beam_size=preset["beam"], top_k=8)
        t_beam = time.perf_counter() - t0
        res[name] = {
            "greedy": recognition_errors(greedy, data.transcripts),
            "beam": recognition_errors(beam, data.transcripts),
            "beam_seconds": t_beam,
            "examples": [(decode(r), decode(h)) for r, h in
                         zip(data.transcripts[:6], greedy[:6])],
        }  # fmt: skip
    metrics = {"train_samples": len(train), "train_seconds": t_train, "steps": preset["steps"],
               "hidden": preset["hidden"], "torch_threads": 1}  # fmt: skip
    for name, r in res.items():
        for dec in ("greedy", "beam"):
            metrics[f"{name}_{dec}_cer"] = r[dec]["label_error_rate"]
            metrics[f"{name}_{dec}_string_error_rate"] = r[dec]["string_error_rate"]
    plots = _pictures(config, model, test_words_seq, words_s)
    success = metrics["held_out_words_greedy_cer"] < 0.3
    ex = "\n".join(f"| {name} | {ref!r} | {hyp!r} |" for name, r in res.items()
                   for ref, hyp in r["examples"])  # fmt: skip
    report = f"""# online-handwriting: BLSTM-CTC on synthetic cursive pen trajectories

Preset: {"quick" if config.quick else "full"}, seed {config.seed}. {len(train)} training
samples (cursive font, {len(train_words)} training words, 20% two-word phrases); {preset["test"]}
test samples each of held-out words ({len(test_words)} words never trained on) and of the
training words in the held-out font ``scriptc``. **Synthetic data** (font strokes with random
slant, scale, rotation, baseline drift and jitter), not people's handwriting: not comparable
with Graves et al. 2009 on IAM-OnDB.

| test set | CER greedy | CER beam {preset["beam"]} | word/phrase error greedy |
|---|---|---|---|
| held-out words | {metrics["held_out_words_greedy_cer"]:.3f} | \
{metrics["held_out_words_beam_cer"]:.3f} | \
{metrics["held_out_words_greedy_string_error_rate"]:.3f} |
| held-out font (scriptc) | {metrics["held_out_font_greedy_cer"]:.3f} | \
{metrics["held_out_font_beam_cer"]:.3f} | \
{metrics["held_out_font_greedy_string_error_rate"]:.3f} |

BLSTM hidden {preset["hidden"]}, {preset["steps"]} Adam steps of {preset["batch"]},
{t_train:.0f} s on 1 torch thread. Success (held-out words CER < 0.3): {"yes" if success else "no"}.

| test set | written | read (greedy) |
|---|---|---|
{ex}
"""
    return ExperimentResult(experiment="online-handwriting", success=success, metrics=metrics,
                            published={}, report=report, plots=plots)  # fmt: skip


def _pictures(config, model, data, samples) -> list:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    from rnnlab.data.pen_handwriting import ALPHABET

    config.out.mkdir(parents=True, exist_ok=True)
    i = max(range(min(20, len(data))), key=lambda j: len(data.transcripts[j]))
    x, lengths, _ = data.take([i]).padded()
    pts = samples.points[i]
    up = samples.features[i][:, 2] > 0
    model.eval()
    with torch.no_grad():
        lp = model(x, lengths)[0]  # (T, 28)
        h, _ = model.stack(x, lengths=lengths)  # (1, T, 2H)
    probs = lp.exp().numpy()
    best = probs.argmax(1)
    fig, axes = plt.subplots(3, 1, figsize=(9, 9))

    def writing(ax):
        start = 0
        for t in list(np.flatnonzero(up)[1:]) + [len(pts)]:
            ax.plot(pts[start:t, 0], pts[start:t, 1], color="0.6", lw=1)
            start = t
        ax.set_aspect("equal")
        ax.axis("off")

    ax = axes[0]  # when each character is emitted
    writing(ax)
    prev = 0
    for t, k in enumerate(best):
        if k != 0 and k != prev:
            ax.plot(pts[t, 0], pts[t, 1], "o", color="C3", ms=4)
            ax.annotate(ALPHABET[k - 1], pts[t], xytext=(0, 8), textcoords="offset points",
                        ha="center", color="C3")  # fmt: skip
        prev = k
    ax.set_title(f"characters emitted (best path) on {samples.texts[i]!r}")

    ax = axes[1]  # a few memory cells' outputs along the trajectory
    hh = h[0].numpy()
    units = np.argsort(-hh.std(0))[:4]
    for u in units:
        ax.plot(hh[:, u], label=f"cell {u}")
    ax.set_xlabel("pen step")
    ax.set_ylabel("cell output h")
    ax.legend(fontsize=7, ncol=4)
    ax.set_title("outputs of the 4 most variable memory cells")

    ax = axes[2]  # gradient of the most active output w.r.t. the (dx, dy) inputs
    lab = probs[:, 1:]
    t_star, k_star = np.unravel_index(lab.argmax(), lab.shape)
    xg = x.clone().requires_grad_(True)
    out = model(xg, lengths)[0, t_star, k_star + 1]
    (grad,) = torch.autograd.grad(out, xg)
    g = grad[0, :, :2].norm(dim=1).numpy()
    writing(ax)
    sc = ax.scatter(pts[:, 0], pts[:, 1], c=g, s=10, cmap="magma_r")
    ax.plot(pts[t_star, 0], pts[t_star, 1], "x", color="C0", ms=10)
    fig.colorbar(sc, ax=ax, fraction=0.02, label="|d y / d (dx, dy)|")
    ax.set_title(f"sensitivity of output {ALPHABET[k_star]!r} at step {t_star} (x) to the pen "
                 "moves")  # fmt: skip
    fig.tight_layout()
    path = config.out / "online_handwriting.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]
