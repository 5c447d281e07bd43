"""Counts beside the LSTM: an interpolated Kneser-Ney character n-gram model of the training
text, counted in one pass (Chen & Goodman's modified discounts D1, D2, D3+ per order).

For a context c of j characters and a next character w,

    p_j(w | c) = (max(N_j(c w) - D_j(N_j(c w)), 0) + gamma_j(c) p_{j-1}(w | c')) / N_j(c)

where c' drops c's oldest character, N_j(c w) is the count of `c w` at the highest order and
the number of distinct characters seen before `c w` (its continuation count) below it,
N_j(c) = sum_w N_j(c w), gamma_j(c) = D1 n1(c) + D2 n2(c) + D3 n3+(c) (n_k(c): how many w have
N_j(c w) = k, or >= 3) and p_{-1} = 1 / V. A context never seen at order j leaves p_{j-1} as is.

Tables are sorted int64 keys searched with torch.searchsorted: a context of j characters is the
index of its (j - 1)-character suffix times V plus its oldest character, a pair is its
context's index times V plus w. All of it derives from the distinct n-grams and their counts,
which is what a checkpoint keeps (`state_dict`).
"""

from __future__ import annotations

import torch

MAX_COUNTED = 20_000_000  # characters counted at most (the tables grow with the text)


class NGram:
    def __init__(self, grams: torch.Tensor, counts: torch.Tensor, vocab_size: int):
        """`grams` (K, n): the distinct n-grams of the text, oldest character first, with their
        `counts` (K,)."""
        self.order, self.vocab_size = grams.shape[1], vocab_size
        self.grams, self.counts = grams, counts
        self._orders: list[NGram] | None = None
        V, n = vocab_size, self.order
        grams, counts = grams.long(), counts.long()
        # Context tables: index[j] maps each gram to its j-character context's row.
        index = [torch.zeros(len(grams), dtype=torch.long)]
        self.context_keys: list[torch.Tensor] = [torch.zeros(1, dtype=torch.long)]
        for j in range(1, n):
            keys, inverse = torch.unique(index[-1] * V + grams[:, n - 1 - j], return_inverse=True)
            self.context_keys.append(keys)
            index.append(inverse)
        # Pair tables, from the top down: counts at order n - 1, continuation counts below.
        self.pair_keys: list[torch.Tensor] = [torch.empty(0, dtype=torch.long)] * n
        self.pair_counts: list[torch.Tensor] = [torch.empty(0, dtype=torch.long)] * n
        top, order = torch.sort(index[n - 1] * V + grams[:, n - 1])
        self.pair_keys[n - 1], self.pair_counts[n - 1] = top, counts[order]
        for j in range(n - 2, -1, -1):
            above = self.pair_keys[j + 1]
            parent = self.context_keys[j + 1][above // V] // V  # the context minus its oldest
            self.pair_keys[j], self.pair_counts[j] = torch.unique(parent * V + above % V,
                                                                  return_counts=True)
        self.totals, self.gammas, self.discounts = [], [], []
        for j in range(n):
            contexts = self.pair_keys[j] // V
            c = self.pair_counts[j]
            d = _discounts(c)  # (4,): D(0) = 0, D1, D2, D3+
            size = len(self.context_keys[j])
            self.discounts.append(d)
            self.totals.append(torch.zeros(size, dtype=torch.float64).index_add_(
                0, contexts, c.double()))
            self.gammas.append(torch.zeros(size, dtype=torch.float64).index_add_(
                0, contexts, d[c.clamp(max=3)]))
        uniform = torch.full((1, V), 1.0 / V, dtype=torch.float64)
        self.unigram = self._interpolate(torch.zeros(1, n, dtype=torch.long), uniform,
                                         range(1))[0]  # (V,) order 0, the empty context

    @classmethod
    def count(cls, ids: torch.Tensor, vocab_size: int, order: int) -> NGram:
        """The model of the id stream `ids` (at most its first MAX_COUNTED characters); of a
        lower order when the stream is shorter than `order`."""
        ids = ids[:MAX_COUNTED].long()
        if len(ids) < 2:
            raise ValueError("counting needs at least 2 characters")
        order = min(order, len(ids))
        windows = ids.unfold(0, order, 1)  # (N - n + 1, n)
        # One int64 key per window, built a column at a time (row indices times V stay small).
        key = torch.zeros(len(windows), dtype=torch.long)
        for j in range(order):
            _, key = torch.unique(key * vocab_size + windows[:, j], return_inverse=True)
        first, counts = _first_and_counts(key)
        return cls(windows[first].int(), counts.int(), vocab_size)

    def lower(self, k: int) -> NGram:
        """The model of order k < n, from these counts: a k-gram's count is the sum over the
        n-grams that end with it (the text's first n - k k-grams, which end none, aside)."""
        grams, inverse = torch.unique(self.grams[:, self.order - k:], dim=0, return_inverse=True)
        counts = torch.zeros(len(grams), dtype=torch.long).index_add_(0, inverse,
                                                                      self.counts.long())
        return NGram(grams, counts.int(), self.vocab_size).to(self.unigram.device)

    def by_order(self) -> list[NGram]:
        """The models of orders 2..n, each counted as if it were the highest (built once)."""
        if self._orders is None:
            self._orders = [self.lower(k) for k in range(2, self.order)] + [self]
        return self._orders

    def state_dict(self) -> dict[str, torch.Tensor | int]:
        return {"grams": self.grams, "counts": self.counts, "vocab_size": self.vocab_size}

    @classmethod
    def from_state_dict(cls, state: dict) -> NGram:
        grams, counts = state["grams"], state["counts"]
        if grams.dim() != 2 or counts.shape != grams.shape[:1] or grams.shape[1] < 2:
            raise ValueError("n-gram counts of mismatched shapes")
        return cls(grams, counts, int(state["vocab_size"]))

    def contexts(self, history: torch.Tensor) -> torch.Tensor:
        """The row of each order's context, (M, n) with -1 where unseen, for `history` (M, n - 1):
        the characters before each prediction, oldest first, -1 where there are none."""
        M, n, V = history.shape[0], self.order, self.vocab_size
        rows = torch.full((M, n), -1, dtype=torch.long, device=history.device)
        rows[:, 0] = 0
        for j in range(1, n):
            char = history[:, n - 1 - j].long()
            key = rows[:, j - 1] * V + char
            found, at = _find(self.context_keys[j], key)
            rows[:, j] = torch.where(found & (rows[:, j - 1] >= 0) & (char >= 0), at, -1)
        return rows

    def prob(self, history: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """p(target | history) for each row, (M,) float64."""
        return self.prob_in(self.contexts(history), target)

    def prob_in(self, rows: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """p(target | context) for contexts' `rows` (M, n) as `contexts` gives them, (M,)."""
        target = target.long()
        p = torch.full(target.shape, 1.0 / self.vocab_size, dtype=torch.float64,
                       device=target.device)
        for j in range(self.order):
            seen = rows[:, j] >= 0
            ctx = rows[:, j].clamp(min=0)
            found, at = _find(self.pair_keys[j], ctx * self.vocab_size + target)
            c = torch.where(found, self.pair_counts[j][at.clamp(max=len(self.pair_keys[j]) - 1)],
                            0)
            kept = (c - self.discounts[j][c.clamp(max=3)]).clamp(min=0)
            mixed = (kept + self.gammas[j][ctx] * p) / self.totals[j][ctx]
            p = torch.where(seen, mixed, p)
        return p

    def distribution(self, history: torch.Tensor) -> torch.Tensor:
        """p(. | history) for each row, (M, V) float64."""
        return self.distribution_in(self.contexts(history))

    def distribution_in(self, rows: torch.Tensor) -> torch.Tensor:
        """p(. | context) for contexts' `rows` (M, n) as `contexts` gives them, (M, V)."""
        p = self.unigram.expand(rows.shape[0], -1)  # order 0 is the same for every row
        return self._interpolate(rows, p, range(1, self.order))

    def _interpolate(self, rows: torch.Tensor, p: torch.Tensor, orders: range) -> torch.Tensor:
        """`p` (M, V) interpolated up through `orders`, for the contexts' `rows` (M, n)."""
        M, V, device = rows.shape[0], self.vocab_size, rows.device
        for j in orders:
            seen = rows[:, j] >= 0
            ctx = rows[:, j].clamp(min=0)
            keys, counts = self.pair_keys[j], self.pair_counts[j]
            lo = torch.searchsorted(keys, ctx * V)
            hi = torch.searchsorted(keys, ctx * V + V)
            hi = torch.where(seen, hi, lo)  # unseen contexts add no pairs
            lengths = hi - lo
            owner = torch.repeat_interleave(torch.arange(M, device=device), lengths)  # per pair
            starts = torch.cumsum(lengths, 0) - lengths
            at = lo[owner] + torch.arange(len(owner), device=device) - starts[owner]
            c = counts[at]
            kept = torch.zeros(M, V, dtype=torch.float64, device=device)
            kept[owner, keys[at] % V] = (c - self.discounts[j][c.clamp(max=3)]).clamp(min=0)
            mixed = (kept + self.gammas[j][ctx, None] * p) / self.totals[j][ctx, None]
            p = torch.where(seen[:, None], mixed, p)
        return p

    def to(self, device: torch.device | str) -> NGram:
        """The tables moved to `device` (in place; returns self)."""
        for tables in (self.context_keys, self.pair_keys, self.pair_counts, self.totals,
                       self.gammas, self.discounts):
            tables[:] = [t.to(device) for t in tables]
        self.unigram = self.unigram.to(device)
        for model in (self._orders or [])[:-1]:
            model.to(device)
        return self

    def longest(self, history: torch.Tensor) -> torch.Tensor:
        """The length of the longest context seen in the training text, (M,) in [0, n - 1]."""
        return longest_in(self.contexts(history))


def longest_in(rows: torch.Tensor) -> torch.Tensor:
    """`NGram.longest` for contexts' `rows` (M, n) as `contexts` gives them."""
    return (rows >= 0).sum(1) - 1


def histories(rows: torch.Tensor, order: int) -> torch.Tensor:
    """For ids `rows` (R, L), the n - 1 characters before each of positions 1..L - 1 of its
    row (R, L - 1, n - 1), -1 before the row's start."""
    R = rows.shape[0]
    none = torch.full((R, order - 1), -1, dtype=torch.long, device=rows.device)
    padded = torch.cat([none, rows.long()], 1)
    return padded.unfold(1, order - 1, 1)[:, 1: rows.shape[1]]


def _find(keys: torch.Tensor, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    at = torch.searchsorted(keys, query)
    inside = at < len(keys)
    found = inside & (keys[at.clamp(max=max(len(keys) - 1, 0))] == query) if len(keys) else inside
    return found, at


def _first_and_counts(key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each distinct value of `key` (dense 0..K-1): a position holding it, and its count."""
    K = int(key.max()) + 1
    first = torch.empty(K, dtype=torch.long).scatter_(0, key, torch.arange(len(key)))
    return first, torch.bincount(key, minlength=K)


def _discounts(counts: torch.Tensor) -> torch.Tensor:
    """Modified Kneser-Ney discounts from the count-of-counts n1..n4 (Chen & Goodman 1998):
    D_k = k - (k + 1) Y n_{k+1} / n_k with Y = n1 / (n1 + 2 n2); each kept within [0, k]."""
    n = [float((counts == k).sum()) for k in range(1, 5)]
    y = n[0] / (n[0] + 2 * n[1]) if n[0] + n[1] > 0 else 0.5
    d = [0.0]
    for k in range(1, 4):
        value = k - (k + 1) * y * n[k] / n[k - 1] if n[k - 1] > 0 else 0.5
        d.append(min(max(value, 0.0), float(k)))
    return torch.tensor(d, dtype=torch.float64)
