"""Keywords a song must hold (`--keywords 月光,离别`), each once: keyword j of k belongs to the
j-th k-th of the song's lines. On each of those lines half the candidates carry it, at places
spread over the line; it goes on the first of them where a candidate carrying it wins, and on
its share's last line every candidate carries it. Among candidates the score decides, so a
keyword lands on a line, and at a place in it, that the model finds likely for it."""

from __future__ import annotations

import torch

from lyricgen.errors import UsageError


def parse(spec: str | None) -> tuple[str, ...]:
    """`月光,离别` -> ('月光', '离别'); commas (also full-width) part them."""
    if spec is None:
        return ()
    found = tuple("".join(k.split()) for k in spec.replace("，", ",").split(","))
    if not all(found):
        raise UsageError(f"--keywords {spec!r}: give words parted by commas (月光,离别)")
    return found


class Plan:
    """Where each of `songs` songs of `lines` lines stands with its keywords."""

    def __init__(self, keywords: tuple[str, ...], lines: int, songs: int):
        self.keywords, self.lines = keywords, lines
        self.placed = [0] * songs  # how many keywords each song holds so far

    def due(self, s: int, i: int) -> tuple[str, bool] | None:
        """Song s's keyword to try on line i, and whether this line must take it."""
        j, k = self.placed[s], len(self.keywords)
        if j == k or i < j * self.lines // k:
            return None
        return self.keywords[j], i >= (j + 1) * self.lines // k - 1

    def force(self, forced: torch.Tensor, s: int, K: int, ids: list[int], must: bool,
              first: int) -> None:
        """Put the keyword `ids` into song s's candidate rows of `forced` (K rows of one line's
        places), from place `first` on: every row when it `must`, else every other one."""
        high, m = forced.shape[1], len(ids)
        places = high - m - first + 1
        if places < 1:
            return  # no room on this line; a later one of its share takes it
        carriers = range(K) if must else range(0, K, 2)
        for rank, c in enumerate(carriers):
            p = first + rank % places
            forced[s * K + c, p:p + m] = torch.tensor(ids, device=forced.device)

    def note(self, s: int, text: str) -> None:
        """Song s kept `text` as its line: it holds the keyword due, or not."""
        j = self.placed[s]
        if j < len(self.keywords) and self.keywords[j] in "".join(text.split()):
            self.placed[s] += 1
