"""AdjacentBatches and RandomBatches: shapes, the one-step shift, coverage, order, bad sizes.

Batching a stream of positions (`torch.arange`) shows where every window came from; batching
a random id stream with the same settings checks that the values are those positions' ids.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lyricgen.data.batching import AdjacentBatches, RandomBatches
from lyricgen.errors import LyricgenError

PROPERTY = settings(max_examples=150, deadline=None, derandomize=True, database=None)


def random_ids(n: int, seed: int = 0, vocab: int = 50) -> torch.Tensor:
    return torch.randint(vocab, (n,), generator=torch.Generator().manual_seed(seed),
                         dtype=torch.int64).to(torch.int16)


def positions(n: int) -> torch.Tensor:
    return torch.arange(n, dtype=torch.int32)


def all_batches(batches) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [batches.batch(i) for i in range(len(batches))]


def random_batches(ids, b, t, seed=0):
    return RandomBatches(ids, b, t, generator=torch.Generator().manual_seed(seed))


def targets(batches) -> Counter:
    return Counter(p for _, y in all_batches(batches) for p in y.flatten().tolist())


# --- AdjacentBatches ----------------------------------------------------------------------------

def test_adjacent_batches_are_int64_and_shifted_by_one():
    n, b, t = 1003, 4, 7
    ids = random_ids(n)
    pos_batches = all_batches(AdjacentBatches(positions(n), b, t))
    id_batches = all_batches(AdjacentBatches(ids, b, t))
    stream = ids.long()
    for (xp, yp), (x, y) in zip(pos_batches, id_batches, strict=True):
        assert x.dtype == y.dtype == torch.int64
        assert x.shape == y.shape and x.shape[0] == b
        assert torch.equal(yp, xp + 1)
        assert torch.equal(x, stream[xp]) and torch.equal(y, stream[xp + 1])
    assert all(x.shape == (b, t) for x, _ in pos_batches)


def test_adjacent_row_continues_from_batch_to_batch():
    n, b, t = 500, 3, 8
    batches = AdjacentBatches(positions(n), b, t)
    row_len = n // b
    num = (row_len - 1) // t
    assert len(batches) == num
    xs = torch.cat([x for x, _ in all_batches(batches)], dim=1)  # (B, num * T)
    for row in range(b):
        assert xs[row].tolist() == list(range(row * row_len, row * row_len + num * t))


@pytest.mark.parametrize("n, b, t", [(1000, 4, 7), (1000, 4, 5), (37, 3, 4), (64, 1, 63)])
def test_adjacent_batches_target_each_position_once_up_to_the_last_full_window(n, b, t):
    row_len = n // b
    num = (row_len - 1) // t
    expected = Counter(row * row_len + j for row in range(b) for j in range(1, 1 + num * t))
    assert targets(AdjacentBatches(positions(n), b, t)) == expected


@pytest.mark.parametrize("make", [AdjacentBatches, random_batches])
def test_batch_index_out_of_range(make):
    batches = make(positions(100), 2, 5)
    for i in (-1, len(batches)):
        with pytest.raises(IndexError):
            batches.batch(i)


@pytest.mark.parametrize("b, t", [(4, 7), (1, 1), (32, 35)])
def test_adjacent_too_short_text_states_the_minimum(b, t):
    minimum = b * (t + 1)  # every row needs T inputs and one more character as the last target
    assert len(AdjacentBatches(positions(minimum), b, t)) == 1
    with pytest.raises(LyricgenError, match=rf"\b{minimum}\b"):
        AdjacentBatches(positions(minimum - 1), b, t)


@pytest.mark.parametrize("n, said", [(1, "1 character,"), (2, "2 characters,"),
                                     (1234, "1,234 characters,")])
def test_the_too_short_message_counts_in_words(n, said):
    for make in (AdjacentBatches, lambda ids, b, t: RandomBatches(ids, b, t, "cpu",
                                                                   torch.Generator())):
        with pytest.raises(LyricgenError, match=f"one batch: {said}"):
            make(positions(n), 64, 35)


# --- RandomBatches ------------------------------------------------------------------------------

def test_random_batches_are_disjoint_windows_shifted_by_one():
    n, b, t = 1003, 4, 7
    ids = random_ids(n, seed=1)
    pos = all_batches(random_batches(positions(n), b, t, seed=5))
    vals = all_batches(random_batches(ids, b, t, seed=5))
    stream = ids.long()
    assert len(pos) == ((n - 1) // t) // b
    seen = Counter()
    for (xp, yp), (x, y) in zip(pos, vals, strict=True):
        assert x.shape == y.shape == (b, t) and x.dtype == y.dtype == torch.int64
        assert torch.equal(xp, xp[:, :1] + torch.arange(t))  # each row one contiguous window
        assert torch.equal(yp, xp + 1)
        assert torch.equal(x, stream[xp]) and torch.equal(y, stream[xp + 1])
        seen.update(xp.flatten().tolist())
    assert max(seen.values()) == 1  # no two windows of an epoch overlap


def test_random_same_seed_same_batches_other_seed_other_order():
    n, b, t = 4 * 9 * 50 + 1, 4, 9  # 200 windows, all of them used each epoch

    def starts(seed):
        return [x[:, 0].tolist() for x, _ in all_batches(random_batches(positions(n), b, t, seed))]
    assert starts(3) == starts(3)
    assert starts(3) != starts(4)
    assert sorted(sum(starts(3), [])) == sorted(sum(starts(4), []))  # same windows, new order


@pytest.mark.parametrize("b, t", [(4, 7), (1, 1), (32, 35)])
def test_random_too_short_text_states_the_minimum(b, t):
    minimum = b * t + 1  # B windows of T inputs, plus the last window's last target
    assert len(random_batches(positions(minimum), b, t)) == 1
    with pytest.raises(LyricgenError, match=rf"\b{minimum}\b"):
        random_batches(positions(minimum - 1), b, t)


# --- properties ---------------------------------------------------------------------------------

@st.composite
def layouts(draw, minimum):
    """(n, b, t) with n at least `minimum(b, t)`."""
    b = draw(st.integers(1, 8))
    t = draw(st.integers(1, 12))
    n = draw(st.integers(minimum(b, t), minimum(b, t) + 300))
    return n, b, t


@PROPERTY
@given(layouts(lambda b, t: b * (t + 1)))
def test_adjacent_every_target_exactly_once(layout):
    n, b, t = layout
    batches = AdjacentBatches(positions(n), b, t)
    row_len = n // b
    last = 1 + ((row_len - 1) // t) * t
    expected = Counter(row * row_len + j for row in range(b) for j in range(1, last))
    assert targets(batches) == expected
    for x, y in all_batches(batches):
        assert torch.equal(y, x + 1)


@PROPERTY
@given(layouts(lambda b, t: b * t + 1), st.integers(0, 2**31))
def test_random_windows_disjoint(layout, seed):
    n, b, t = layout
    batches = all_batches(random_batches(positions(n), b, t, seed))
    assert len(batches) == ((n - 1) // t) // b
    xs = torch.stack([x for x, _ in batches])
    assert len(set(xs.flatten().tolist())) == xs.numel()
    assert int(xs.max()) + 1 < n  # the last target still lies in the stream
    for x, y in batches:
        assert torch.equal(y, x + 1)
