"""The prequential Bayesian mixture that the counts (mixing.py) and the cache (cache.py) learn
their weights with: K experts, each with prior 1/K, weighted at position t by how well each
predicted the positions already read (in t's row and group):

    w_k(t) ∝ (1 / K) prod_{s < t, g(s) = g(t)} p_k(y_s)
    p(y_t) = sum_k w_k(t) p_k(y_t)

so a figure read with it is never tuned on itself: each weight comes from characters before
the one it predicts. In logs, with E_k(t) = log(1 / K) + sum_{s < t, g(s) = g(t)} log p_k(y_s)
the evidence before t,

    log p(y_t) = logsumexp_k(E_k(t) + log p_k(y_t)) - logsumexp_k(E_k(t))

A window of positions is read at once: E_k(t) is the evidence kept from the windows before,
plus the window's cumulative sum of log p_k over t's group, t itself excluded.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class Prequential:
    """`experts` experts over `rows` rows read side by side, each row with its own evidence per
    group (a group: positions that share weights, such as the counts' level b)."""

    def __init__(self, experts: int, rows: int, groups: int = 1,
                 device: torch.device | None = None):
        # log prior + log-likelihood of the scored positions read so far (K, R, G)
        self.log_evidence = torch.full((experts, rows, groups), -math.log(experts),
                                       dtype=torch.float64, device=device)

    def read(self, log_p: torch.Tensor, group: torch.Tensor | None = None,
             scored: torch.Tensor | None = None) -> torch.Tensor:
        """The mixture's log p(y) (R, T) for a window, from each expert's log p(y) (K, R, T)
        (float64) and the group of each position (R, T) (all 0 if not given), each position
        weighted by the evidence before it; then the window's `scored` positions (R, T) (all,
        if not given) join the evidence."""
        K, R, T = log_p.shape
        if group is None:
            at = torch.ones(R, T, 1, dtype=torch.bool, device=log_p.device)
        else:
            at = F.one_hot(group, self.log_evidence.shape[2]).bool()  # (R, T, G): t's group
        mine = at if scored is None else at & scored.unsqueeze(-1)  # what joins the evidence
        by_group = torch.where(mine, log_p.unsqueeze(-1), 0.0)  # (K, R, T, G)
        # The evidence before the window plus the window's earlier positions, per group.
        seen = self.log_evidence.unsqueeze(2) + by_group.cumsum(2) - by_group  # (K, R, T, G)
        before = torch.where(at, seen, 0.0).sum(-1)  # (K, R, T): t's own group's
        self.log_evidence += by_group.sum(2)
        return torch.logsumexp(before + log_p, 0) - torch.logsumexp(before, 0)

    def posterior(self) -> torch.Tensor:
        """Each expert's weight now per group (K, G), the rows' evidence pooled."""
        return torch.softmax(self.log_evidence.sum(1), 0)


class StreamStage:
    """A stage of evaluation along a stream, in its order (evaluate.py): the log p(y) (1, S) of
    the stage before in, its own out, a window of `num_steps` at a time; `_read` mixes one
    window, the stream's targets `at`, with the window's part of each of `along` (1, S) (or
    None)."""

    done = 0  # the targets read so far

    def mix(self, logp: torch.Tensor, num_steps: int, *along: torch.Tensor | None
            ) -> torch.Tensor:
        mixed = []
        for start in range(0, logp.shape[1], num_steps):
            end = min(start + num_steps, logp.shape[1])
            windows = [a if a is None else a[:, start:end] for a in along]
            at = slice(self.done + start, self.done + end)
            mixed.append(self._read(logp[:, start:end], at, *windows))
        self.done += logp.shape[1]
        return torch.cat(mixed, 1)

    def _read(self, logp: torch.Tensor, at: slice, *along: torch.Tensor | None
              ) -> torch.Tensor:
        raise NotImplementedError
