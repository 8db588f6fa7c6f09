r"""The HMM connected-word recogniser: one HMM per word joined in a looped grammar, decoded
by Viterbi over the composed model (the classic system of speech recognition before
recurrent networks; Rabiner 1989 §VII; the one-pass algorithm of Bridle et al. 1982 and
Ney 1984).

Each word :math:`w` is an :class:`rnnlab.classic.hmm.HMM` with initial distribution
:math:`\pi^w`, transitions :math:`A^w` and Gaussian emissions, plus an exit probability
:math:`e^w_k` per state (estimated from where the training utterances' Viterbi paths end).
The grammar loops: after any word any word may follow, each with probability
:math:`g_w = 1/W` (optionally an insertion penalty :math:`\lambda` per word, in nats, and an
optional silence model that emits no label). Within a word the chain moves with
:math:`(1 - e^w_j) A^w_{jk}`; leaving from :math:`j` and entering word :math:`v` at
:math:`k` has probability :math:`e^w_j \, g_v \, \pi^v_k`. The recogniser finds

.. math::

    \max_{n,\; w_{1:n},\; z_{1:T}} \; \log p(x_{1:T}, z_{1:T}, w_{1:n}),

the best segmentation of the frames into words together with each word's best state path,
by one Viterbi pass over the composed states :math:`(w, k)`:

.. math::

    \delta_t(w, k) = \log b^w_k(x_t) + \max\Big(
        \max_j \big[\delta_{t-1}(w, j) + \log (1 - e^w_j) A^w_{jk}\big],\;
        \epsilon_{t-1} + \log g_w \pi^w_k + \lambda_w \Big),
    \qquad \epsilon_t = \max_{v, j} \big[\delta_t(v, j) + \log e^v_j\big],

with :math:`\epsilon_0 = 0` and the answer :math:`\epsilon_T`. Keeping "entered a new word"
apart from "stayed in the word" in the back-pointers is what lets a word follow itself
("1 1"): summing both into one transition matrix would merge the repeats.

==========================  ======================================================
symbol                      meaning
==========================  ======================================================
:math:`W`                   words (the digits, plus silence when given)
:math:`K_w`                 states of word :math:`w`; :math:`N = \sum_w K_w`
:math:`b^w_k(x)`            emission density of state :math:`k` of word :math:`w`
:math:`\lambda_w`           log insertion penalty (0 for silence)
==========================  ======================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from rnnlab._validation import check_lengths, check_rank, check_tensor
from rnnlab.classic.hmm import HMM
from rnnlab.errors import InputError

__all__ = ["ConnectedWordHMM", "Recognition", "exit_probabilities", "emission_log_probs"]


class Recognition(NamedTuple):
    """One decoded sequence.

    words: the recognised word indices (silence left out).
    segments: (word, first frame, last frame + 1) per segment, silence included (word -1).
    log_prob: the joint log-probability of the best path and segmentation.
    """

    words: list[int]
    segments: list[tuple[int, int, int]]
    log_prob: float


def emission_log_probs(hmm: HMM, x: Tensor) -> Tensor:
    r"""(..., T, K) :math:`\log b_k(x_t)` of a Gaussian (or Gaussian-mixture) HMM: the
    log-density the HMM itself uses (``hmm.emissions.log_prob``)."""
    if hmm.emission not in ("gaussian", "gmm"):
        raise InputError(f"words: expected Gaussian or GMM emissions, received {hmm.emission!r}")
    return hmm.emissions.log_prob(x.to(hmm.dtype))


def exit_probabilities(hmm: HMM, x: Tensor, lengths: Tensor, prior: float = 0.5) -> Tensor:
    r"""(K,) :math:`e_k`: of the frames the training utterances' Viterbi paths spend in
    state :math:`k`, the fraction that are an utterance's last frame (with ``prior`` added
    to both counts' ratio as ``(ends + prior / K) / (visits + prior)``)."""
    K = hmm.num_states
    paths = hmm.predict(x, lengths)  # (B, T)
    B, T = paths.shape
    mask = torch.arange(T)[None, :] < lengths[:, None]
    visits = torch.bincount(paths[mask], minlength=K).double()
    last = paths[torch.arange(B), lengths - 1]
    ends = torch.bincount(last, minlength=K).double()
    return ((ends + prior / K) / (visits + prior)).clamp(max=1.0)


class ConnectedWordHMM(nn.Module):
    """Word HMMs in a looped grammar, decoded by one-pass Viterbi (module docstring).

    Args:
        words: one trained HMM per word (word index = position).
        exit_probs: per word a (K_w,) tensor of exit probabilities.
        silence: an optional silence HMM (and ``silence_exit``) that may occur between
            any two words and at either end, emitting no label.
        word_penalty: :math:`\\lambda`, nats added each time a (non-silence) word starts;
            negative values discourage insertions.
    """

    def __init__(
        self,
        words: Sequence[HMM],
        exit_probs: Sequence[Tensor],
        *,
        silence: HMM | None = None,
        silence_exit: Tensor | None = None,
        word_penalty: float = 0.0,
    ) -> None:
        super().__init__()
        if len(words) < 1 or len(exit_probs) != len(words):
            raise InputError(
                f"exit_probs: expected one per word ({len(words)}), received {len(exit_probs)}"
            )
        if (silence is None) != (silence_exit is None):
            raise InputError("silence_exit: expected exactly with a silence model")
        self.words = nn.ModuleList(words)
        self.silence = silence
        models = list(words) + ([silence] if silence is not None else [])
        exits = list(exit_probs) + ([silence_exit] if silence is not None else [])
        self.obs_dim = models[0].means.shape[-1]
        for w, (m, e) in enumerate(zip(models, exits)):
            if m.means.shape[-1] != self.obs_dim:
                raise InputError(f"words: model {w} has obs_dim {m.means.shape[-1]}, expected "
                                 f"{self.obs_dim}")  # fmt: skip
            if e.shape != (m.num_states,) or float(e.min()) <= 0 or float(e.max()) > 1:
                raise InputError(f"exit_probs: word {w}: expected {m.num_states} values in "
                                 f"(0, 1], received {e}")  # fmt: skip
        W = len(models)
        self.word_penalty = float(word_penalty)
        owner, blocks = [], []
        N = sum(m.num_states for m in models)
        log_A = torch.full((N, N), -math.inf, dtype=torch.float64)
        log_entry = torch.empty(N, dtype=torch.float64)
        log_exit = torch.empty(N, dtype=torch.float64)
        i = 0
        with torch.no_grad():
            for w, (m, e) in enumerate(zip(models, exits)):
                K = m.num_states
                e = e.double()
                A = m.transition_matrix.double()
                log_A[i : i + K, i : i + K] = torch.log((1 - e)[:, None] * A)
                penalty = 0.0 if (silence is not None and w == W - 1) else self.word_penalty
                log_entry[i : i + K] = m.initial_probs.double().log() - math.log(W) + penalty
                log_exit[i : i + K] = e.log()
                owner += [w if not (silence is not None and w == W - 1) else -1] * K
                blocks.append((i, i + K))
                i += K
        self.register_buffer("log_A", log_A)  # (N, N) within-word moves
        self.register_buffer("log_entry", log_entry)  # (N,) start a word at this state
        self.register_buffer("log_exit", log_exit)  # (N,) leave the word from this state
        self.register_buffer("owner", torch.tensor(owner))  # (N,) word of each state (-1 sil)
        self._models = models
        self._exits = exits

    def with_word_penalty(self, word_penalty: float) -> ConnectedWordHMM:
        """The same word models and grammar with another insertion penalty."""
        n = len(self.words)
        return ConnectedWordHMM(list(self.words), self._exits[:n], silence=self.silence,
                                silence_exit=self._exits[n] if self.silence is not None else None,
                                word_penalty=word_penalty)  # fmt: skip

    @classmethod
    def fit_words(
        cls,
        utterances: Sequence[tuple[Tensor, Tensor]],
        num_states: int,
        *,
        n_iter: int = 30,
        covariance: str = "diag",
        silence: tuple[Tensor, Tensor] | None = None,
        silence_states: int = 1,
        word_penalty: float = 0.0,
        seed: int = 0,
    ) -> ConnectedWordHMM:
        """Train one Gaussian HMM per word on its isolated utterances (Baum-Welch) and its
        exit probabilities; ``utterances[w]`` is (x (B, T, D), lengths (B,)) of word w."""
        words, exits = [], []
        for w, (x, lengths) in enumerate(utterances):
            hmm = HMM(num_states, "gaussian", obs_dim=x.shape[-1], covariance=covariance,
                      dtype=torch.float64)  # fmt: skip
            hmm.fit(x.double(), lengths, n_iter=n_iter, tol=1e-3, generator=seed + w,
                    min_covar=1e-3)  # fmt: skip
            words.append(hmm)
            exits.append(exit_probabilities(hmm, x.double(), lengths))
        sil = sil_exit = None
        if silence is not None:
            x, lengths = silence
            sil = HMM(silence_states, "gaussian", obs_dim=x.shape[-1], covariance=covariance,
                      dtype=torch.float64)  # fmt: skip
            sil.fit(x.double(), lengths, n_iter=n_iter, tol=1e-3, generator=seed, min_covar=1e-3)
            sil_exit = exit_probabilities(sil, x.double(), lengths)
        return cls(words, exits, silence=sil, silence_exit=sil_exit, word_penalty=word_penalty)

    def emission_log_probs(self, x: Tensor) -> Tensor:
        """(B, T, N) log-densities of every composed state."""
        return torch.cat([emission_log_probs(m, x) for m in self._models], -1).double()

    @torch.no_grad()
    def decode(self, x: Tensor, lengths=None) -> list[Recognition]:
        """The best word sequence of each sequence of ``x`` (B, T, D) (module docstring)."""
        check_tensor("x", x)
        check_rank("x", x, (3,), "(B, T, D): batch, frames, features")
        if x.shape[-1] != self.obs_dim:
            raise InputError(f"x: expected {self.obs_dim} features per frame, received shape "
                             f"{tuple(x.shape)}")  # fmt: skip
        B, T, _ = x.shape
        lengths = check_lengths(
            torch.full((B,), T) if lengths is None else lengths, B, T, torch.device("cpu")
        )
        log_b = self.emission_log_probs(x.cpu())  # (B, T, N)
        N = log_b.shape[-1]
        delta = self.log_entry[None, :] + log_b[:, 0]  # (B, N)
        stay_bp = torch.zeros(B, T, N, dtype=torch.long)  # best previous state in the word
        entered = torch.zeros(B, T, N, dtype=torch.bool)  # entered a new word at t
        exit_bp = torch.zeros(B, T, dtype=torch.long)  # best state to leave from at t
        entered[:, 0] = True
        exit_score = torch.empty(B, T, dtype=torch.float64)
        for t in range(T):
            if t > 0:
                stay, arg = (delta[:, :, None] + self.log_A[None]).max(1)  # (B, N)
                enter = exit_score[:, t - 1, None] + self.log_entry[None, :]  # (B, N)
                new = torch.where(enter > stay, enter, stay) + log_b[:, t]
                active = (t < lengths)[:, None]
                stay_bp[:, t] = arg
                entered[:, t] = enter > stay
                delta = torch.where(active, new, delta)
            e, j = (delta + self.log_exit[None, :]).max(1)  # (B,)
            exit_score[:, t], exit_bp[:, t] = e, j
        out = []
        for b in range(B):
            L = int(lengths[b])
            state = int(exit_bp[b, L - 1])
            total = float(exit_score[b, L - 1])
            segments, end = [], L
            for t in range(L - 1, -1, -1):
                if bool(entered[b, t, state]):
                    segments.append((int(self.owner[state]), t, end))
                    end = t
                    if t > 0:
                        state = int(exit_bp[b, t - 1])
                else:
                    state = int(stay_bp[b, t, state])
            segments.reverse()
            out.append(Recognition([w for w, _, _ in segments if w >= 0], segments, total))
        return out
