"""The training text's counts as the mixture (mixing.py) reads them: `ngram`, counted over the
text as it is, and `joined`, counted over the same text with its line breaks taken out, as if
its lines were one.

Counts place a line break poorly: every context of theirs that ever ended a line spends some
probability on ending it here too, where the LSTM, counting the line's characters, knows. And
in a text whose sense runs on across line ends (a sentence, a chain, a hidden state), a line's
first character follows from the characters that ended the line before, which the plain
counts see only behind the line break. So each order's counts take part three ways: as they
are, p_k; with the LSTM saying whether the line ends,

    e(p)(y) = p_lstm(\n)                                  for the line break
    e(p)(y) = (1 - p_lstm(\n)) p(y) / (1 - p(\n))        for any other y,

as e(p_k); and as e(j_k), j_k the joined counts of order k reading the last k - 1 characters
that are not line breaks. The mixture weighs each as it weighs the orders, by how well it
predicts: the lyrics keep the plain counts' line ends, a text of fixed line lengths the
LSTM's, one whose lines run on the joined counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lyricgen.counts.ngram import NGram, histories, longest_in


@dataclass
class TextCounts:
    ngram: NGram
    joined: NGram | None = None  # None: the text has no line break; the plain counts alone
    newline: int = -1  # the line break's id, with `joined`

    @classmethod
    def count(cls, ids: torch.Tensor, vocab_size: int, order: int,
              newline: int | None) -> TextCounts:
        """The counts of the id stream `ids`; joined ones too when `newline` (the line break's
        id) occurs in it and leaves enough characters to count at the same order."""
        ngram = NGram.count(ids, vocab_size, order)
        rest = ids if newline is None else ids[ids != newline]
        if len(rest) == len(ids) or len(rest) < ngram.order:
            return cls(ngram)
        return cls(ngram, NGram.count(rest, vocab_size, ngram.order), newline)

    @property
    def order(self) -> int:
        return self.ngram.order

    def experts(self) -> int:
        """How many experts the counts give the mixture: each order as it is and, in a text of
        lines, each order with the LSTM's line ends and each joined order."""
        return (self.order - 1) * (1 if self.joined is None else 3)

    def state_dict(self) -> dict:
        state = self.ngram.state_dict()
        if self.joined is not None:
            state.update(joined=self.joined.state_dict(), newline=self.newline)
        return state

    @classmethod
    def from_state_dict(cls, state: dict) -> TextCounts:
        """From `state_dict`'s dict; one without joined counts (older files) reads as such."""
        ngram = NGram.from_state_dict(state)
        if "joined" not in state:
            return cls(ngram)
        joined, newline = NGram.from_state_dict(state["joined"]), int(state["newline"])
        if (joined.order, joined.vocab_size) != (ngram.order, ngram.vocab_size) or \
                not 0 <= newline < ngram.vocab_size:
            raise ValueError("joined counts that do not fit the counts")
        return cls(ngram, joined, newline)

    def to(self, device: torch.device | str) -> TextCounts:
        """The tables moved to `device` (in place; returns self)."""
        for model in (self.ngram, self.joined):
            if model is not None:
                model.to(device)
        return self

    def target_probs(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For the stream `ids` (N,): each expert's p(y) at each of its targets 1..N - 1
        (experts, N - 1), with the LSTM's line ends as p(y) / (1 - p(\n)) (`with_line_ends`
        completes them), and each target's level (N - 1,): the longest context the plain counts
        of order n have seen."""
        targets = ids[1:]
        rows = _rows(self.ngram, histories(ids[None], self.order)[0])
        p = [m.prob_in(r, targets) for m, r in rows]
        if self.joined is not None:
            breaks = torch.full_like(targets, self.newline)
            joined = _rows(self.joined, joined_histories(ids, self.order, self.newline))
            p += [p[k] / (1 - m.prob_in(r, breaks)) for k, (m, r) in enumerate(rows)]
            p += [m.prob_in(r, targets) / (1 - m.prob_in(r, breaks)) for m, r in joined]
        return torch.stack(p), longest_in(rows[-1][1])

    def distributions(self, history: torch.Tensor, joined: torch.Tensor,
                      p_end: torch.Tensor | None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Each expert's p(. | context) (M, V) for M streams, from their last n - 1
        characters `history` (M, n - 1) and last n - 1 that are not line breaks `joined`
        (M, n - 1), oldest first, -1 where there are none, with the LSTM's p(\n) `p_end` (M,)
        where the line ends are the LSTM's. Also each stream's level (M,)."""
        rows = _rows(self.ngram, history)
        p = [m.distribution_in(r) for m, r in rows]
        if self.joined is not None:
            p += [self._ends(d, p_end) for d in p]
            p += [self._ends(m.distribution_in(r), p_end) for m, r in _rows(self.joined, joined)]
        return p, longest_in(rows[-1][1])

    def _ends(self, p: torch.Tensor, p_end: torch.Tensor) -> torch.Tensor:
        """e(p) (M, V) for distributions `p` (M, V), the LSTM's p(\n) `p_end` (M,)."""
        e = p * ((1 - p_end) / (1 - p[:, self.newline]))[:, None]
        e[:, self.newline] = p_end
        return e


def _rows(counts: NGram, history: torch.Tensor) -> list[tuple[NGram, torch.Tensor]]:
    """Each order k of `counts` with its contexts' rows for `history` (M, n - 1), of which
    order k reads the last k - 1."""
    n = counts.order
    return [(m, m.contexts(history[:, n - m.order:])) for m in counts.by_order()]


def with_line_ends(p: torch.Tensor, ends: torch.Tensor, p_end: torch.Tensor) -> torch.Tensor:
    """The joined experts' q(y) (..., T) from `target_probs`'s `p` (..., T), whether each
    target is the line break `ends` (T,) and the LSTM's p(\\n) there `p_end` (T,)."""
    return torch.where(ends, p_end, (1 - p_end) * p)


def joined_histories(ids: torch.Tensor, order: int, newline: int) -> torch.Tensor:
    """For the stream `ids` (N,), the last n - 1 characters other than `newline` before each
    of its positions 1..N - 1 (N - 1, n - 1), oldest first, -1 where there are none."""
    kept = ids != newline
    before = torch.cumsum(kept.long(), 0) - kept.long()  # kept characters before each position
    padded = torch.cat([ids.new_full((order - 1,), -1), ids[kept]])
    return padded[before[1:, None] + torch.arange(order - 1, device=ids.device)]
