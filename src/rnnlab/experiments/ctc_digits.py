"""``ctc-digits``: a BLSTM trained with connectionist temporal classification against the
HMM connected-digit recogniser it replaced, on the same held-out connected-digit strings.

Data: :mod:`rnnlab.data.connected_digits` (strings of 1-7 Free Spoken Digit utterances,
training and test strings from disjoint inferred speakers; the file has no speaker labels).

CTC recogniser (:class:`rnnlab.labelling.CTCRecogniser`): one bidirectional LSTM layer, 11
outputs (the blank and the ten digits), trained on the transcripts only (no frame labels,
no boundaries; the full preset makes three passes over the training utterances, each
joining them into new strings) with Adam through the one training loop; decoded by best
path (greedy) and by prefix beam search.

HMM recogniser (:class:`rnnlab.labelling.ConnectedWordHMM`): one Gaussian HMM per digit
(diagonal covariances, Baum-Welch) trained on the isolated training utterances, the exit
probabilities from their Viterbi paths, joined in a looped grammar (any digit after any
digit) and decoded by one-pass Viterbi; the word insertion penalty is chosen on training
strings. The HMMs are given the isolated words (the utterance boundaries of the training
strings), which the CTC network never sees: the classic system's usual advantage.

Metrics: label error rate (edit distance over reference digits, Graves et al. 2006 §5.1)
and string error rate (strings not recognised exactly). Success: the CTC recogniser's
greedy label error rate below the HMM recogniser's. Measured on seeds 0, 1, 2 (full preset):
CTC greedy 0.365 / 0.339 / 0.274 against the HMM's 0.318 / 0.304 / 0.337, so the rule holds
on 1 of 3 seeds (the documented rate): with four training speakers the network, which must
also learn where the words are, generalises to new voices no better than the HMMs that are
given the word boundaries.
"""

from __future__ import annotations

import time

import torch

from rnnlab._threads import torch_threads
from rnnlab.experiments import ExperimentConfig, ExperimentResult, register

_QUICK = {"hidden": 24, "steps": 40, "batch": 8, "train_strings": 100, "train_passes": 1,
          "test_strings": 30,
          "hmm_states": 3, "em_iter": 5, "beam": 4, "penalties": (0.0,)}  # fmt: skip
_FULL = {"hidden": 64, "steps": 2400, "batch": 16, "train_strings": None, "train_passes": 3,
         "test_strings": None, "hmm_states": 8, "em_iter": 30, "beam": 8,
         "penalties": (-20.0, -10.0, 0.0, 10.0)}  # fmt: skip


@register(
    "ctc-digits",
    "BLSTM-CTC vs the HMM connected-digit recogniser (FSDD digit strings)",
    trials=3,
    required=1,  # measured: CTC's label error rate beats the HMM's on 1 of seeds 0-2
)
def run(config: ExperimentConfig) -> ExperimentResult:
    """Label and string error rates of BLSTM-CTC and the looped-grammar HMM recogniser."""
    preset = _QUICK if config.quick else _FULL
    with torch_threads(1):
        return _run(config, preset)


def _isolated(split):
    """Per digit (x (B, T, 13), lengths): the utterances of the strings, cut at the joins."""
    from rnnlab.data.connected_digits import pad_features

    per_digit = [[] for _ in range(10)]
    seen = set()  # with several passes an utterance is in several strings: take it once
    for f, starts, tr, utts in zip(split.features, split.boundaries, split.transcripts,
                                   split.utterances):  # fmt: skip
        ends = starts[1:] + [len(f)]
        for s, e, d, u in zip(starts, ends, tr, utts):
            if u not in seen:
                seen.add(u)
                per_digit[d].append(f[s:e])
    out = []
    for utts in per_digit:
        x, lengths, _ = pad_features(utts, dtype=torch.float64)
        out.append((x, lengths))
    return out


def _decode_hmm(rec, split, batch=64):
    from rnnlab.data.connected_digits import pad_features

    hyps = []
    for i in range(0, len(split), batch):
        x, lengths, _ = pad_features(split.features[i : i + batch], dtype=torch.float64)
        hyps += [r.words for r in rec.decode(x, lengths)]
    return hyps


def _run(config: ExperimentConfig, preset: dict) -> ExperimentResult:
    from rnnlab.data.connected_digits import load_connected_digits
    from rnnlab.labelling import (
        ConnectedWordHMM,
        CTCRecogniser,
        Sequences,
        fit,
        recognition_errors,
        transcribe_all,
    )

    train_s, test_s, info = load_connected_digits(train_passes=preset["train_passes"],
                                                  seed=config.seed)  # fmt: skip
    if preset["train_strings"]:
        train_s = train_s.subset(preset["train_strings"])
    if preset["test_strings"]:
        test_s = test_s.subset(preset["test_strings"])
    refs = test_s.transcripts

    # the HMM recogniser: word models on the isolated training utterances
    t0 = time.perf_counter()
    words = _isolated(train_s)
    best = None
    tune = train_s.subset(min(60, len(train_s)))
    base = ConnectedWordHMM.fit_words(words, preset["hmm_states"], n_iter=preset["em_iter"],
                                      seed=config.seed)  # fmt: skip
    for penalty in preset["penalties"]:
        rec = base.with_word_penalty(penalty)
        err = recognition_errors(_decode_hmm(rec, tune), tune.transcripts)["label_error_rate"]
        if best is None or err < best[0]:
            best = (err, penalty, rec)
    _, penalty, rec = best
    hmm_hyps = _decode_hmm(rec, test_s)
    t_hmm = time.perf_counter() - t0
    hmm = recognition_errors(hmm_hyps, refs)

    # the CTC recogniser: transcripts only
    train = Sequences(train_s.features, None, train_s.transcripts)
    test = Sequences(test_s.features, None, test_s.transcripts)
    model = CTCRecogniser(13, 10, hidden_size=preset["hidden"])
    t0 = time.perf_counter()
    fit(model, train, steps=preset["steps"], batch_size=preset["batch"], lr=5e-3,
        seed=config.seed)  # fmt: skip
    t_ctc = time.perf_counter() - t0
    greedy = recognition_errors(transcribe_all(model, test), refs)
    t0 = time.perf_counter()
    beam = recognition_errors(transcribe_all(model, test, beam_size=preset["beam"]), refs)
    t_beam = time.perf_counter() - t0

    metrics = {
        "ctc_greedy_label_error_rate": greedy["label_error_rate"],
        "ctc_greedy_string_error_rate": greedy["string_error_rate"],
        "ctc_beam_label_error_rate": beam["label_error_rate"],
        "ctc_beam_string_error_rate": beam["string_error_rate"],
        "hmm_label_error_rate": hmm["label_error_rate"],
        "hmm_string_error_rate": hmm["string_error_rate"],
        "hmm_word_penalty": penalty,
        "hmm_states": preset["hmm_states"],
        "ctc_hidden": preset["hidden"],
        "ctc_steps": preset["steps"],
        "beam_size": preset["beam"],
        "train_strings": len(train_s),
        "test_strings": len(test_s),
        "test_digits": sum(len(r) for r in refs),
        "hmm_seconds": t_hmm,
        "ctc_train_seconds": t_ctc,
        "ctc_beam_decode_seconds": t_beam,
        "torch_threads": 1,
    }
    success = greedy["label_error_rate"] < hmm["label_error_rate"]
    report = f"""# ctc-digits: BLSTM-CTC vs the HMM connected-digit recogniser

Preset: {"quick" if config.quick else "full"}, seed {config.seed}; {len(train_s)} training and
{len(test_s)} test strings ({metrics["test_digits"]} test digits), 1-7 digits each, test
speakers held out (inferred by clustering: the data has no speaker labels).

| recogniser | label error rate | string error rate |
|---|---|---|
| BLSTM-CTC, hidden {preset["hidden"]}, greedy | {greedy["label_error_rate"]:.3f} | \
{greedy["string_error_rate"]:.3f} |
| BLSTM-CTC, prefix beam {preset["beam"]} | {beam["label_error_rate"]:.3f} | \
{beam["string_error_rate"]:.3f} |
| HMM per digit ({preset["hmm_states"]} states) in a looped grammar, Viterbi, penalty \
{penalty:g} | {hmm["label_error_rate"]:.3f} | {hmm["string_error_rate"]:.3f} |

Success rule (CTC greedy label error rate below the HMM's): {"yes" if success else "no"}.
Times (1 torch thread): HMMs trained, tuned and decoded {t_hmm:.1f} s; CTC training
{t_ctc:.1f} s ({preset["steps"]} steps of {preset["batch"]} strings); beam decoding of the
test strings {t_beam:.1f} s. The HMMs were trained on the isolated utterances (boundaries
known); the CTC network saw only the digit strings.
"""
    return ExperimentResult(
        experiment="ctc-digits",
        success=success,
        metrics=metrics,
        published={},
        report=report,
    )
