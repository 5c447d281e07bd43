"""The training text's counts as the mixture (mixing.py) reads them: `ngram`, counted over the
text as it is, and `joined`, counted over the same text with its line breaks taken out, as if
its lines were one.

In a text whose sense runs on across line ends (a sentence, a chain, a hidden state), a line's
first character follows from the characters that ended the line before, which the plain counts
see only behind the line break; and every context of theirs spends probability on a line
break that the LSTM, counting the line's characters, places far better. The joined counts say
which character comes, the LSTM whether the line ends:

    q_k(y) = p_lstm(\\n)                                    for the line break
    q_k(y) = (1 - p_lstm(\\n)) p_k(y) / (1 - p_k(\\n))      for any other y

p_k: the joined counts of order k, reading the last k - 1 characters that are not line breaks.
The mixture weighs each q_k as it weighs each order of the plain counts, by how well it
predicts: on a text whose lines start afresh, it leaves them out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lyricgen.counts.ngram import NGram, histories, longest_in


@dataclass
class TextCounts:
    ngram: NGram
    joined: NGram | None = None  # None: the text has no line break to take out
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

    def models(self) -> list[NGram]:
        """The counts of the mixture's experts: the plain ones of orders 2..n, then the
        joined ones of the same orders."""
        return self.ngram.by_order() + (self.joined.by_order() if self.joined else [])

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
        (experts, N - 1), a joined one's as p_k(y) / (1 - p_k(\\n)) (`with_line_ends`
        completes it), and each target's level (N - 1,): the longest context the plain counts
        of order n have seen."""
        n, targets = self.order, ids[1:]
        history = histories(ids[None], n)[0]  # (N - 1, n - 1)
        rows = [m.contexts(history[:, n - m.order:]) for m in self.ngram.by_order()]
        p = [m.prob_in(r, targets) for m, r in zip(self.ngram.by_order(), rows)]
        if self.joined is not None:
            joined = joined_histories(ids, n, self.newline)
            breaks = torch.full_like(targets, self.newline)
            for m in self.joined.by_order():
                r = m.contexts(joined[:, n - m.order:])
                p.append(m.prob_in(r, targets) / (1 - m.prob_in(r, breaks)))
        return torch.stack(p), longest_in(rows[-1])

    def distributions(self, history: torch.Tensor, joined: torch.Tensor, p_end: torch.Tensor
                      ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Each expert's p(. | context) (M, V) for M streams, from their last n - 1
        characters `history` (M, n - 1) and last n - 1 that are not line breaks `joined`
        (M, n - 1), oldest first, -1 where there are none; the joined ones completed with the
        LSTM's p(\\n) `p_end` (M,). Also each stream's level (M,)."""
        n = self.order
        rows = [m.contexts(history[:, n - m.order:]) for m in self.ngram.by_order()]
        p = [m.distribution_in(r) for m, r in zip(self.ngram.by_order(), rows)]
        for m in self.joined.by_order() if self.joined is not None else []:
            d = m.distribution_in(m.contexts(joined[:, n - m.order:]))
            q = d * ((1 - p_end) / (1 - d[:, self.newline]))[:, None]
            q[:, self.newline] = p_end
            p.append(q)
        return p, longest_in(rows[-1])


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
