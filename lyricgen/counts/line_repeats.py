"""Lines sung again: the earlier lines of a held-out stream that began as the current line has
so far, and what came next in them (evaluate.py's third stage, before the cache).

A song repeats its own lines (a chorus, a refrain). At each target, the current line's
characters so far (its prefix, up to LONGEST of them) are looked up among the `recent` lines
before it, of the stream already read; those that began the same way predict the target by
what followed there (their next character, or their end):

    p_line(y) = (recent lines with the prefix, followed by y) / (recent lines with the prefix)
    p(y)      = (1 - lambda) p_model(y) + lambda p_line(y)

Unlike the repeats (repeats.py), which follow any run of characters of the last 4,096
positions, a line is matched from its start and among the lines just before, so its first
characters already find the song's own lines rather than another song's. How far back to look
and how far to trust a match are learned as the stream is read: each (recent, lambda) is an
expert of a Bayesian mixture (prequential.py), lambda = 0 (the stage before alone) among them,
with its own weights for each prefix length.
"""

from __future__ import annotations

import torch

from lyricgen.counts.prequential import Prequential, StreamStage

LONGEST = 32  # the longest prefix matched; later positions of a long line are left to repeats.py
RECENT = (16, 64, 256)  # how many lines back to look: a song, a few, many
LAMBDAS = (0.1, 0.3, 0.5, 0.8, 0.95, 0.99)
LENGTHS = 12  # the prefix lengths with weights of their own (longer ones share the last)


def line_matches(ids: torch.Tensor, newline: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each target ids[t + 1] (t = 0 .. N - 2): p_line(ids[t + 1]) looking back each of
    RECENT lines (len(RECENT), N - 1) (float64; -1 where no recent line has the prefix), and
    the prefix's length (N - 1)."""
    ids = ids.long().cpu()
    V = int(ids.max()) + 1
    line, length, key = _prefixes(ids, newline, V)
    # the prefix and the character after it: ranks of (key, character) where key is known
    after = torch.unique(torch.where(key >= 0, key * V + ids, -1), return_inverse=True)[1]
    after = torch.where(key >= 0, after, -1)
    p = []
    for recent in RECENT:
        seen = _in_recent_lines(key, line, recent)
        followed = _in_recent_lines(after, line, recent)
        p.append(torch.where(seen > 0, followed.double() / seen.clamp(min=1), -1.0))
    return torch.stack(p)[:, 1:], length[1:]


def _prefixes(ids: torch.Tensor, newline: int, V: int) -> tuple[torch.Tensor, ...]:
    """For each position u (N) of `ids` (below V): the index of its line, the length of the
    line's prefix before it, and that prefix's key (the same for the same characters; -1 past
    LONGEST)."""
    N = len(ids)
    breaks = ids == newline
    line = torch.cumsum(breaks.long(), 0) - breaks.long()  # the line breaks before u
    starts = torch.zeros(N, dtype=torch.long)
    after_break = torch.nonzero(breaks[:-1]).flatten() + 1
    starts[after_break] = after_break
    length = torch.arange(N) - torch.cummax(starts, 0).values
    key = torch.where(length == 0, 0, -1)
    known = 1  # keys given so far: a prefix's key is the rank of (the key before, character)
    for m in range(1, LONGEST + 1):
        at = torch.nonzero(length == m).flatten()
        if not len(at):
            break
        rank = torch.unique(key[at - 1] * V + ids[at - 1], return_inverse=True)[1]
        key[at] = known + rank
        known += int(rank.max()) + 1
    return line, length, key


def _in_recent_lines(key: torch.Tensor, line: torch.Tensor, recent: int) -> torch.Tensor:
    """For each position u with a key (else 0): how many positions of the `recent` lines
    before u's own have u's key (N); one at most per line, a key holding its prefix."""
    lines = int(line.max()) + 1
    code = key * lines + line  # sorts by key, then line
    order = code[key >= 0].sort().values
    below = torch.searchsorted(order, key * lines + (line - recent).clamp(min=0))
    return torch.where(key >= 0, torch.searchsorted(order, code) - below, 0)


class LineRepeatStream(StreamStage):
    """The stage after the counts: their log p(y) in, the mixture's out."""

    def __init__(self, ids: torch.Tensor, newline: int, device: torch.device):
        p_line, length = line_matches(ids, newline)
        self.p_line = p_line[:, None].to(device)  # (len(RECENT), 1, N - 1)
        self.group = length.clamp(max=LENGTHS - 1)[None].to(device)  # (1, N - 1)
        self.lambdas = torch.tensor(LAMBDAS, dtype=torch.float64, device=device)[:, None, None]
        self.mixture = Prequential(1 + len(RECENT) * len(LAMBDAS), 1, LENGTHS, device)

    def _read(self, logp: torch.Tensor, at: slice) -> torch.Tensor:
        logp = logp.double()
        experts = [logp[None]]
        for p in self.p_line[:, :, at]:  # (1, T) each
            lam = self.lambdas * (p >= 0)  # (L, 1, T): no recent line with the prefix, lambda 0
            experts.append(torch.log((1 - lam) * logp.exp() + lam * p.clamp(min=0)))
        return self.mixture.read(torch.cat(experts), self.group[:, at])
