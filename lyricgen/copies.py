"""Copies of the corpus: a guard that no run of `n` characters within a line of the written text
equals a run of the corpus (a mask while drawing, for every kind of sampling), and the longest
run of a line that the corpus holds (what the output reports). Spaces are not characters here,
on either side: a copy cannot slip through by a space put in it.

The guard's index is built from the corpus's ids (which the checkpoint keeps) for the `n` asked:
every run of n - 1 characters within a line of the corpus, as a chain of sorted int64 keys (the
run's first j characters are row r of level j; level j + 1's key is r * V + its next character),
and every run of n as its first n - 1 characters' row times V plus its last character. A
stream's last n - 1 characters are looked up level by level; the characters that follow them in
the corpus are the ones it may not draw. Exact (no hashing): at most 8 n bytes per corpus
character (about 10 on a million characters of Chinese text, built in 0.2 s).
"""

from __future__ import annotations

import torch

from lyricgen.data.vocab import Vocab

MAX_GUARDED = 20_000_000  # corpus characters a checkpoint keeps for the guard, at most
DEFAULT_RUN = 6  # the writer's own rate: new songs share a run of 6 with old ones in 3% of lines


class CopyIndex:
    """The corpus `ids` (of `vocab`) as text, to tell how much of a line it holds (`longest`),
    and, for n > 0, its runs of `n` characters within a line, to guard against them
    (`forbidden`); n = 0 builds no guard."""

    def __init__(self, ids: torch.Tensor, vocab: Vocab, n: int):
        self.n, self.vocab_size = n, len(vocab)
        self.newline = vocab.index.get("\n")
        self.space = torch.tensor([c.isspace() and c != "\n" for c in vocab.chars])  # (V,)
        ids = ids[~self.space[ids.long()]]
        self.text = vocab.decode(ids.tolist())
        self.levels: list[torch.Tensor] = []  # level j: the keys of the first j + 1 characters
        self.runs = torch.empty(0, dtype=torch.long)  # (K,) sorted: the runs of n
        if n:
            self._index(ids.long())

    def _index(self, ids: torch.Tensor) -> None:
        n, V = self.n, self.vocab_size
        runs = ids.unfold(0, n, 1) if len(ids) >= n else ids.new_empty(0, n)  # (M, n)
        if self.newline is not None:
            runs = runs[~(runs == self.newline).any(1)]
        row = torch.zeros(len(runs), dtype=torch.long)
        for j in range(n - 1):
            keys, row = torch.unique(row * V + runs[:, j], return_inverse=True)
            self.levels.append(keys)
        self.runs = torch.unique(row * V + runs[:, n - 1])

    def forbidden(self, history: torch.Tensor) -> torch.Tensor:
        """(N, V): the characters that would complete a run of the corpus after each stream's
        last n - 1 characters, `history` (N, n - 1), oldest first, -1 where there are none."""
        N, V = history.shape[0], self.vocab_size
        row = torch.zeros(N, dtype=torch.long, device=history.device)
        seen = torch.ones(N, dtype=torch.bool, device=history.device)
        for j, keys in enumerate(self.levels):
            key = row * V + history[:, j]
            row = torch.searchsorted(keys, key)
            seen &= (history[:, j] >= 0) & (row < len(keys))
            seen &= keys[row.clamp(max=max(len(keys) - 1, 0))] == key if len(keys) else False
        lo = torch.searchsorted(self.runs, row * V)
        hi = torch.where(seen, torch.searchsorted(self.runs, row * V + V), lo)
        lengths = hi - lo  # how many characters follow each stream's context in the corpus
        owner = torch.repeat_interleave(torch.arange(N, device=row.device), lengths)
        at = lo[owner] + torch.arange(len(owner), device=row.device) \
            - (torch.cumsum(lengths, 0) - lengths)[owner]
        out = torch.zeros(N, V, dtype=torch.bool, device=row.device)
        out[owner, self.runs[at] % V] = True
        return out

    def to(self, device: torch.device | str) -> CopyIndex:
        self.space = self.space.to(device)
        self.levels = [keys.to(device) for keys in self.levels]
        self.runs = self.runs.to(device)
        return self

    def longest(self, line: str) -> int:
        """The length of the longest run of `line`'s characters that the corpus holds (a line
        holds no newline, so runs across the corpus's line ends do not count)."""
        line = "".join(line.split())
        best = start = 0
        for end in range(1, len(line) + 1):  # the shortest start whose run to `end` is held
            while start < end and line[start:end] not in self.text:
                start += 1
            best = max(best, end - start)
        return best


class GuardedStepper:
    """A stepper (Stepper or mixing.MixedStepper) that also says, after each step, which
    characters each stream may not draw (`forbidden`, (N, V)); its `logits` stay the model's.
    `columns` adds the streams' recent characters, so rewinding a stream rewinds them too."""

    def __init__(self, stepper, index: CopyIndex, prefix: list[int]):
        self.stepper, self.index = stepper, index
        if index.newline in prefix:  # runs start after the prefix's last line end
            prefix = prefix[len(prefix) - prefix[::-1].index(index.newline):]
        recent = [-1] * (index.n - 1) + [i for i in prefix if not index.space[i]]
        self.history = torch.tensor(recent[-(index.n - 1):], device=stepper.logits.device)[
            :, None].repeat(1, stepper.logits.shape[0])  # (n - 1, N)
        self.forbidden = index.forbidden(self.history.t())

    @property
    def logits(self) -> torch.Tensor:
        return self.stepper.logits

    def columns(self) -> list[torch.Tensor]:
        return [*self.stepper.columns(), self.history]

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        on = ~self.index.space[ids]  # a space leaves a stream's run as it was
        self.history[:-1, on] = self.history[1:, on].clone()
        self.history[-1, on] = ids[on]
        if self.index.newline is not None:  # a new line: no run reaches back across it
            self.history[:, ids == self.index.newline] = -1
        self.forbidden = self.index.forbidden(self.history.t())
        return self.stepper.step(ids)


def guarded(stepper, index: CopyIndex | None, prefix: list[int]):
    """`stepper` with the guard of `index` on it (streams warmed up on `prefix`), or as it is
    when there is none."""
    return stepper if index is None or not index.n else GuardedStepper(stepper, index, prefix)


def without_copies(allowed: torch.Tensor, forbidden: torch.Tensor) -> torch.Tensor:
    """`allowed` (N, V) less the `forbidden` characters, except in a row where that would leave
    nothing to draw (every character left would copy: the copy is let through, and reported)."""
    clean = allowed & ~forbidden
    return torch.where(clean.any(1, keepdim=True), clean, allowed)
