"""The LSTM and the counts (ngram.py) as one model:

    p(y) = (1 - sum_k w_bk) p_lstm(y) + sum_k w_bk p_k(y),   b = the longest context seen

where p_k is the counts of order k (2..n, each counted as the highest: `NGram.by_order`), in a
text of lines also each order with the LSTM's line ends and the joined counts of each order
(text_counts.py), and b the longest context the order-n counts have seen, so the counts weigh
more where they know the context well, and each as much as it predicts. A text of short memory
wants order 2 or 3; one that repeats long runs wants n; one whose lines run on, the joined
counts.

In validation the weights are not set but learned as the text is read: the LSTM alone and
each (order k, weight w) on a grid are experts in a Bayesian mixture, one mixture per b,
weighted by how well each predicted the characters of that b already seen (prequential.py; the
continuous cache learns its settings the same way, cache.py). The mixture of experts is itself
of the form above, with w_bk the posterior mean of w over order k's experts at the end of
validation: what sampling uses (`weights`), and what a checkpoint keeps.
"""

from __future__ import annotations

import torch

from lyricgen.models.base import State
from lyricgen.models.charlm import CharLM
from lyricgen.models.stepper import Stepper
from lyricgen.counts.prequential import Prequential
from lyricgen.counts.text_counts import TextCounts

WEIGHTS = tuple(k / 10 for k in range(1, 10))  # each order's grid; the LSTM alone is apart


class CountMixture:
    """The online mixture over a stream cut into `rows` rows; `read` a window at a time. The
    experts are the LSTM alone, then each order's weights w of the grid, order by order; one
    mixture (prequential.py) per row and level."""

    def __init__(self, rows: int, levels: int, orders: int, device: torch.device):
        self.grid = torch.tensor(WEIGHTS, dtype=torch.float64, device=device)[:, None, None]
        self.orders = orders
        self.mixture = Prequential(1 + orders * len(WEIGHTS), rows, levels, device)

    def read(self, logp_lstm: torch.Tensor, p_counts: torch.Tensor, level: torch.Tensor,
             scored: torch.Tensor | None = None) -> torch.Tensor:
        """The mixture's log p(y) for a window (R, T), given the LSTM's log p(y), each order's
        p(y) (orders, R, T) (text_counts.py's experts) and the level b of each position; then
        the window's `scored` positions (all, if not given) join the evidence."""
        p_lstm = logp_lstm.double().exp()
        log_p = [logp_lstm.double()[None]] + [torch.log((1 - self.grid) * p_lstm + self.grid * p)
                                               for p in p_counts]
        return self.mixture.read(torch.cat(log_p), level, scored)  # log_p: (K, R, T)

    def weights(self) -> list[list[float]]:
        """w_bk: for each level, each order's weight, the posterior mean over its experts (the
        rows' evidence pooled)."""
        posterior = self.mixture.posterior()[1:]  # (orders x grid, levels)
        by_order = posterior.reshape(self.orders, len(WEIGHTS), -1) * self.grid[:, :, 0]
        return by_order.sum(1).t().tolist()


Counts = tuple[TextCounts, list[list[float]]]  # the counts, their weights per level and order


def make_stepper(model: CharLM, state: State, prefix: list[int], counts: Counts | None
                 ) -> Stepper | MixedStepper:
    """The sampler's stepper for streams warmed up on `prefix` (their `state`): the LSTM's,
    mixed with `counts` when given."""
    stepper = Stepper(model, state)
    return stepper if counts is None else MixedStepper(stepper, *counts, prefix)


class MixedStepper:
    """A Stepper whose `logits` are the mixture's log-probabilities, with `weights` per level
    and order; `columns` adds the streams' recent characters, so rewinding a stream rewinds
    them too."""

    def __init__(self, stepper: Stepper, counts: TextCounts, weights: list[list[float]],
                 prefix: list[int]):
        self.stepper, self.counts = stepper, counts
        N = stepper.logits.shape[0]
        device = stepper.logits.device
        self.weights = torch.tensor(weights, dtype=torch.float64, device=device)  # (n, orders)
        # The last n - 1 characters of each stream, and the last n - 1 but line breaks: (n - 1, N)
        self.history = _recent(prefix, counts.order, N, device)
        self.joined = _recent([c for c in prefix if c != counts.newline], counts.order, N, device)
        self.mixed = torch.empty(counts.ngram.vocab_size, N, device=device)  # (V, N), as columns
        self.logits = self.mixed.t()  # (N, V)
        self._mix()

    def columns(self) -> list[torch.Tensor]:
        return [*self.stepper.columns(), self.history, self.joined, self.mixed]

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        self.history[:-1] = self.history[1:].clone()
        self.history[-1] = ids
        kept = ids != self.counts.newline  # a line break leaves the joined history as it is
        self.joined.copy_(torch.where(kept, torch.cat([self.joined[1:], ids[None]]), self.joined))
        self.stepper.step(ids)
        self._mix()
        return self.logits

    def _mix(self) -> None:
        p_lstm = torch.softmax(self.stepper.logits.double(), -1)  # (N, V)
        p_end = p_lstm[:, self.counts.newline] if self.counts.joined is not None else None
        counts, level = self.counts.distributions(self.history.t(), self.joined.t(), p_end)
        w = self.weights[level]  # (N, orders)
        p = (1 - w.sum(1, keepdim=True)) * p_lstm
        for k, p_k in enumerate(counts):
            p += w[:, k, None] * p_k
        self.mixed.t().copy_(p.log())


def _recent(ids: list[int], order: int, streams: int, device: torch.device) -> torch.Tensor:
    """The last n - 1 of `ids`, -1 where there are fewer, a column per stream (n - 1, N)."""
    recent = ([-1] * order + ids)[-(order - 1):]
    return torch.tensor(recent, device=device)[:, None].repeat(1, streams)
