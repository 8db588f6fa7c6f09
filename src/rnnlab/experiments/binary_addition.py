"""``rnnlab reproduce binary-addition``: Hinton's binary-addition RNN
(docs/tasks.md#binary-addition).

An Elman SRN with 3 hidden units reads two bits per step (least significant first) and
outputs the sum bit of the column read two steps earlier. In Hinton's net the input
reaches the hidden layer one step late and the hidden layer reaches the output one step
late; here the SRN's hidden state ``h_t`` reads column ``t`` at once, so the output at
step ``t`` is read from ``h_{t-2}`` (same information, same delay). Trained with Adam on
8-bit sums; tested on 64-bit sums. The hidden states, clustered by k-means into 4
groups, are compared with the 4 states of the carry automaton (carry, sum bit), and the
transition table between clusters is printed.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn

from rnnlab._threads import torch_threads
from rnnlab.analysis.kmeans import kmeans
from rnnlab.experiments import ExperimentConfig, ExperimentResult, register
from rnnlab.experiments._task_training import train_until_consolidated
from rnnlab.tasks import binary_addition as ba

STATE_NAMES = {
    0: "no carry, print 0",
    1: "no carry, print 1",
    2: "carry, print 0",
    3: "carry, print 1",
}
INPUTS = ((0, 0), (0, 1), (1, 0), (1, 1))
BATCH = 32
LR = 0.05


def _make_srn(hidden: int):
    try:
        from rnnlab.nn import SRN

        return SRN(2, hidden)
    except ImportError:  # pragma: no cover - before rnnlab.nn existed
        return nn.RNN(2, hidden, batch_first=True)


class AdderNet(nn.Module):
    """SRN(2 -> 3 tanh units) and a logistic output unit read two steps late."""

    def __init__(self, hidden: int = 3):
        super().__init__()
        self.rnn = _make_srn(hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, _ = self.rnn(x)  # (B, T, H)
        logits = torch.full_like(x[..., :1], -10.0)  # steps 0, 1: nothing to say yet
        logits[:, ba.DELAY :] = self.out(h[:, : -ba.DELAY])
        return logits, h  # (B, T, 1), (B, T, H)


def _train(seed: int, steps: int, consolidate: int, n_bits: int, lr: float):
    """Adam on random ``n_bits`` sums until 512 random 64-bit sums (a check set; the
    reported test set is separate) have been all right at every check (each 50 steps)
    for ``consolidate`` steps, so that the states saturate. Returns (net, sequences,
    solved)."""
    torch.manual_seed(seed)
    net = AdderNet(3)
    check = ba.generate(512, 64, seed=10_000 + seed)

    def loss_fn(m, batch):
        logits, _ = m(batch.inputs)
        return nn.functional.binary_cross_entropy_with_logits(
            logits[batch.mask], batch.targets[batch.mask]
        )

    def all_right(m) -> bool:
        return ba.error_rate(torch.sigmoid(m(check.inputs)[0]), check) == 0.0

    seen, solved = train_until_consolidated(
        net, lambda b, g: ba.generate(b, n_bits, generator=g), loss_fn, all_right,
        batch_size=BATCH, max_steps=steps, consolidate=consolidate, lr=lr, seed=seed,
    )  # fmt: skip
    return net, seen, solved


def _clusters(H: torch.Tensor, true_state: torch.Tensor, seed: int, restarts: int = 5):
    """The fewest k-means clusters (4..8) whose every cluster is >= 99% one automaton
    state; returns (k, labels, cluster -> state map, purity)."""
    g = torch.Generator().manual_seed(seed)
    for k in range(4, 9):  # the lowest within-cluster sum of squares of `restarts` runs
        lab = kmeans(H, k, n_init=restarts, n_iter=50, generator=g).labels
        cmap, hits = {}, 0
        for c in range(k):
            if (lab == c).any():
                vals, counts = true_state[lab == c].unique(return_counts=True)
                cmap[c] = int(vals[counts.argmax()])
                hits += int(counts.max())
        purity = hits / true_state.numel()
        if purity >= 0.99 and set(cmap.values()) == {0, 1, 2, 3}:
            return k, lab, cmap, purity
    return k, lab, cmap, purity


@register(
    "binary-addition", "SRN with 3 hidden units adds binary numbers; carry automaton", trials=3
)
def run(config: ExperimentConfig) -> ExperimentResult:
    steps, consolidate, restarts, n_test = (
        (600, 100, 3, 100) if config.quick else (2000, 500, 8, 1000)
    )
    with torch_threads(1):
        trials = []
        for r in range(restarts):
            net, seen, ok = _train(config.seed * 100 + r + 1, steps, consolidate, 8, LR)
            trials.append(seen)
            if ok:
                break
        net.eval()
        test = ba.generate(n_test, 64, seed=config.seed + 777)
        with torch.no_grad():
            logits, h = net(test.inputs)
    probs = torch.sigmoid(logits)
    wrong = ba.error_rate(probs, test)
    a = ba.from_bits(test.inputs[:, :64, 0])
    b = ba.from_bits(test.inputs[:, :64, 1])
    sums_ok = sum(int(s == x + y) for s, x, y in zip(ba.decode_sum(probs), a, b))

    # hidden states vs the carry automaton
    true_state = ba.carry_states(test.inputs).reshape(-1)  # (B*T,)
    H = h.reshape(-1, h.shape[-1])  # (B*T, 3)
    k, lab, cmap, purity = _clusters(H, true_state, config.seed, 2 if config.quick else 5)
    state_of = torch.tensor([cmap.get(c, 0) for c in range(k)])[lab].view(h.shape[:2])  # (B, T)
    table: dict[tuple[int, tuple[int, int]], Counter] = {}
    xin = test.inputs.round().long()
    for t in range(1, h.shape[1]):
        for s, i0, i1, nxt in zip(
            state_of[:, t - 1].tolist(),
            xin[:, t, 0].tolist(),
            xin[:, t, 1].tolist(),
            state_of[:, t].tolist(),
        ):
            table.setdefault((s, (i0, i1)), Counter())[nxt] += 1

    # the automaton's own transitions: carry' = (a + b + carry) // 2, sum = (...) % 2
    def automaton(s: int, i: tuple[int, int]) -> int:
        tot = i[0] + i[1] + s // 2
        return 2 * (tot // 2) + tot % 2

    rows, agree = [], True
    for s in range(4):
        cells = []
        for i in INPUTS:
            cnt = table.get((s, i))
            nxt = cnt.most_common(1)[0][0] if cnt else None
            agree &= nxt is None or nxt == automaton(s, i)
            cells.append("-" if nxt is None else str(nxt))
        rows.append(f"| {s}: {STATE_NAMES[s]} | " + " | ".join(cells) + " |")
    table_md = "\n".join(
        [
            "| state (its clusters merged) | in 00 | in 01 | in 10 | in 11 |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    print("hidden-state clusters labelled by automaton state; next state by input bits (a, b):")
    print(table_md)

    config.out.mkdir(parents=True, exist_ok=True)
    plot = _plot(h, state_of, config.out / "hidden_states.png")
    success = wrong == 0.0 and purity >= 0.99 and agree
    metrics = {
        "hidden_units": 3,
        "train_bits": 8,
        "test_bits": 64,
        "test_sums": n_test,
        "test_sums_correct": sums_ok,
        "test_error_rate": wrong,
        "sequences_seen": sum(trials),
        "restarts": len(trials) - 1,
        "clusters": k,
        "cluster_purity": purity,
        "transitions_match_automaton": agree,
    }
    published = {"hidden_units": 3, "test_error_rate": 0.0, "clusters": 4}
    report = "\n".join(
        [
            "# binary-addition: an SRN with 3 hidden units adds binary numbers",
            "",
            "Setup: tanh SRN 2-3, logistic output read two steps late; Adam (lr 0.05), "
            f"batches of {BATCH} random 8-bit sums until 512 random 64-bit check sums have "
            f"stayed all right for {consolidate} steps; a new seed when a run has not "
            f"managed that within {steps} steps. Tested on {n_test} fresh 64-bit sums.",
            "",
            f"- 64-bit sums correct: {sums_ok}/{n_test} (error rate {wrong:.4f})",
            f"- training sequences seen: {sum(trials)} over {len(trials)} run(s)",
            f"- hidden states: the fewest k-means clusters that are each >= 99% one "
            f"automaton state: {k} (4 = exactly the carry automaton; more = a finer "
            f"machine whose states merge into the automaton's), purity {purity:.4f}",
            "",
            "Transitions between clusters (most frequent next cluster, labelled by the "
            "automaton state it matches), on fresh 64-bit sums; they "
            + ("match" if agree else "do NOT match")
            + " the carry automaton:",
            "",
            table_md,
            "",
            f"![hidden states]({plot.name})",
        ]
    )
    return ExperimentResult("binary-addition", success, metrics, published, report, [plot])


def _plot(h: torch.Tensor, state_of: torch.Tensor, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    H = h.reshape(-1, h.shape[-1])[:4000]
    s = state_of.reshape(-1)[:4000]
    fig = plt.figure(figsize=(5.5, 5))
    ax = fig.add_subplot(projection="3d")
    for k in range(4):
        pts = H[s == k]
        ax.scatter(pts[:, 0], pts[:, 1], pts[:, 2], s=4, label=STATE_NAMES[k])
    ax.set_title("SRN hidden states, coloured by carry-automaton state")
    ax.legend(fontsize=7, loc="upper left")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
