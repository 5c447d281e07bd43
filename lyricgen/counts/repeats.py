"""Exact repeats in the part of a held-out stream already seen: the cache's second memory
(evaluate.py's third stage), for the lines a song sings again.

The continuous cache (cache.py) finds earlier positions whose LSTM output is like this one's;
a line sung again is found more surely by its characters. At each target, the longest run of
characters just read (up to LONGEST) that also ends at one of the WINDOW positions before is
the match, of length L (0: none); what followed its earlier ends predicts the target:

    p_copy(y) = (earlier ends of the match followed by y) / (earlier ends of the match)
    p(y)      = (1 - lambda) p_cached(y) + lambda p_copy(y)

as a compression program's match model does. How far a match of each length is to be trusted
is learned as the stream is read: each lambda (and lambda = 0, the cache alone) is an expert
of a Bayesian mixture with its own weights for each L (prequential.py), so a long match can
come to be trusted and a short one not, and nothing is tuned on the figure it reports.
"""

from __future__ import annotations

import torch

from lyricgen.counts.prequential import Prequential, StreamStage

WINDOW = 4096  # the positions before a target whose runs it may match (the cache's window)
LONGEST = 16  # the longest run matched: a repeated line is sure long before this
LAMBDAS = (0.5, 0.8, 0.95, 0.99)


def matches(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each target ids[t + 1] (t = 0 .. N - 2): the length of its match (N - 1) and
    p_copy(ids[t + 1]) (N - 1, float64; 0 where no match)."""
    earlier = [_earlier(key) for key in _runs(ids.long().cpu(), LONGEST + 1)]  # L = 1 .. +1
    # Before target t: runs of L ending at t seen before; runs of L + 1 ending at t + 1 seen
    # before are those same earlier ends, followed by the target.
    seen = torch.stack([e[:-1] for e in earlier[:-1]])  # (LONGEST, N - 1)
    followed = torch.stack([e[1:] for e in earlier[1:]])
    lengths = torch.arange(1, LONGEST + 1)[:, None]
    length = torch.where(seen > 0, lengths, 0).amax(0)  # the longest seen
    at = (length - 1).clamp(min=0)[None]
    p_copy = followed.gather(0, at)[0].double() / seen.gather(0, at)[0].clamp(min=1)
    return length.to(ids.device), p_copy.to(ids.device)  # no match: 0 / 1


def _runs(ids: torch.Tensor, longest: int) -> list[torch.Tensor]:
    """For L = 1 .. longest, one number per distinct run of L characters, at the position of
    each run's last character (N): exactly, each the rank of (the run of L - 1 before, the
    character). Runs reaching before the stream hold as many of a character it never has, so
    they match nothing."""
    outside = int(ids.max()) + 1 if len(ids) else 0
    stream = torch.cat([ids.new_full((longest,), outside), ids])
    keys, key = [], stream
    for L in range(1, longest + 1):
        if L > 1:  # (run of L - 1 ending one before, character): -1 before the padding
            before = torch.cat([key.new_full((1,), -1), key[:-1]])
            key = torch.unique((before + 1) * (outside + 1) + stream, return_inverse=True)[1]
        keys.append(key[longest:])
    return keys


def _earlier(key: torch.Tensor) -> torch.Tensor:
    """For each position u, the positions u - WINDOW .. u - 1 with the same key (N)."""
    n = len(key)
    position = torch.arange(n)
    code = key * n + position  # sorts by key, then position
    order = code.sort().values
    first = key * n + (position - WINDOW).clamp(min=0)
    return torch.searchsorted(order, code) - torch.searchsorted(order, first)


class RepeatStream(StreamStage):
    """The stage after the cache: the cache's log p(y) in, the mixture's out."""

    def __init__(self, ids: torch.Tensor, device: torch.device):
        self.length, self.p_copy = (m[None].to(device) for m in matches(ids))  # (1, N - 1)
        self.lambdas = torch.tensor(LAMBDAS, dtype=torch.float64, device=device)[:, None, None]
        self.mixture = Prequential(len(LAMBDAS) + 1, 1, LONGEST + 1, device=device)  # + lambda 0

    def _read(self, logp: torch.Tensor, at: slice) -> torch.Tensor:
        length, p_copy = self.length[:, at], self.p_copy[:, at]
        lam = self.lambdas * (length > 0)  # (K - 1, 1, T); no match: the cache alone
        logp = logp.double()
        log_p = torch.cat([logp[None], torch.log((1 - lam) * logp.exp() + lam * p_copy)])
        return self.mixture.read(log_p, length)  # (1, T)
