"""The LSTM and the counts (ngram.py) as one model:

    p(y) = (1 - w_b) p_lstm(y) + w_b p_counts(y),   b = the longest context the counts have seen

so the counts weigh more where they know the context well. In validation the weights are not
set but learned as the text is read: each w on a grid is an expert in a Bayesian mixture, one
mixture per b, weighted by how well it predicted the characters of that b already seen
(prequential.py; the continuous cache learns its settings the same way, cache.py). The
posterior mean of w for each b at the end of validation is what sampling uses (`weights`), and
what a checkpoint keeps.
"""

from __future__ import annotations

import torch

from lyricgen.models.base import State
from lyricgen.models.charlm import CharLM
from lyricgen.models.stepper import Stepper
from lyricgen.counts.ngram import NGram, longest_in
from lyricgen.counts.prequential import Prequential

WEIGHTS = tuple(k / 10 for k in range(10))  # 0: the LSTM alone


class CountMixture:
    """The online mixture over a stream cut into `rows` rows; `read` a window at a time. The
    experts are the weights w of the grid, one mixture (prequential.py) per row and level."""

    def __init__(self, rows: int, levels: int, device: torch.device):
        self.grid = torch.tensor(WEIGHTS, dtype=torch.float64, device=device)[:, None, None]
        self.mixture = Prequential(len(WEIGHTS), rows, levels, device)

    def read(self, logp_lstm: torch.Tensor, p_counts: torch.Tensor, level: torch.Tensor,
             scored: torch.Tensor | None = None) -> torch.Tensor:
        """The mixture's log p(y) for a window (R, T), given the LSTM's log p(y), the counts'
        p(y) and the level b of each position; then the window's `scored` positions (all, if
        not given) join the evidence."""
        log_p = torch.log((1 - self.grid) * logp_lstm.double().exp() + self.grid * p_counts)
        return self.mixture.read(log_p, level, scored)  # log_p: (K, R, T)

    def weights(self) -> list[float]:
        """The posterior mean of w per level, the rows' evidence pooled."""
        return (self.mixture.posterior() * self.grid[:, :, 0]).sum(0).tolist()


Counts = tuple[NGram, list[float]]  # the counts and their weights per level


def make_stepper(model: CharLM, state: State, prefix: list[int], counts: Counts | None
                 ) -> Stepper | MixedStepper:
    """The sampler's stepper for streams warmed up on `prefix` (their `state`): the LSTM's,
    mixed with `counts` when given."""
    stepper = Stepper(model, state)
    return stepper if counts is None else MixedStepper(stepper, *counts, prefix)


class MixedStepper:
    """A Stepper whose `logits` are the mixture's log-probabilities, with `weights` per level;
    `columns` adds the streams' recent characters, so rewinding a stream rewinds them too."""

    def __init__(self, stepper: Stepper, counts: NGram, weights: list[float],
                 prefix: list[int]):
        self.stepper, self.counts = stepper, counts
        N = stepper.logits.shape[0]
        device = stepper.logits.device
        self.weights = torch.tensor(weights, dtype=torch.float64, device=device)
        recent = ([-1] * counts.order + prefix)[-(counts.order - 1):]
        self.history = torch.tensor(recent, device=device)[:, None].repeat(1, N)  # (n - 1, N)
        self.mixed = torch.empty(counts.vocab_size, N, device=device)  # (V, N), as columns
        self.logits = self.mixed.t()  # (N, V)
        self._mix()

    def columns(self) -> list[torch.Tensor]:
        return [*self.stepper.columns(), self.history, self.mixed]

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        self.history[:-1] = self.history[1:].clone()
        self.history[-1] = ids
        self.stepper.step(ids)
        self._mix()
        return self.logits

    def _mix(self) -> None:
        rows = self.counts.contexts(self.history.t())  # (N, n), looked up once per step
        w = self.weights[longest_in(rows)][:, None]  # (N, 1)
        p_lstm = torch.softmax(self.stepper.logits.double(), -1)
        p = (1 - w) * p_lstm + w * self.counts.distribution_in(rows)
        self.mixed.t().copy_(p.log())
