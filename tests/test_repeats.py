"""The repeats' matches (counts/repeats.py) against a search of every earlier position."""

from __future__ import annotations

import pytest
import torch

from lyricgen.counts import repeats


def brute_force(x: list[int]) -> tuple[list[int], list[float]]:
    """For each target x[t + 1]: the longest run ending at t (up to LONGEST) that also ends at
    one of the WINDOW positions before t, and the share of those ends followed by x[t + 1]."""
    lengths, shares = [], []
    for t in range(len(x) - 1):
        def ends(n):
            return [j for j in range(max(0, t - repeats.WINDOW), t)
                    if j >= n - 1 and t >= n - 1 and x[j - n + 1: j + 1] == x[t - n + 1: t + 1]]
        length = max([n for n in range(1, repeats.LONGEST + 1) if ends(n)], default=0)
        lengths.append(length)
        shares.append(sum(x[j + 1] == x[t + 1] for j in ends(length)) / len(ends(length))
                      if length else 0.0)
    return lengths, shares


@pytest.mark.parametrize("vocab, n, window, longest, seed", [
    (2, 80, 5, 3, 0), (3, 120, 9, 5, 1), (5, 200, 40, 8, 2), (40, 150, 200, 16, 3),
    (1, 30, 4, 6, 4)])  # one character: every run matches, up to the window and the longest
def test_matches_are_every_earlier_run(monkeypatch, vocab, n, window, longest, seed):
    monkeypatch.setattr(repeats, "WINDOW", window)
    monkeypatch.setattr(repeats, "LONGEST", longest)
    ids = torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(seed))
    length, p_copy = repeats.matches(ids)
    expected_length, expected_share = brute_force(ids.tolist())
    assert length.tolist() == expected_length
    assert p_copy.dtype == torch.float64
    assert p_copy.tolist() == pytest.approx(expected_share, abs=1e-15)


def test_a_line_sung_again_is_predicted_from_its_second_character():
    line = list(range(10, 20))  # ten distinct characters; 0 is the newline
    other = list(range(30, 40))
    ids = torch.tensor([0] + line + [0] + other + [0] + line + [0])
    length, p_copy = repeats.matches(ids)
    again = 23  # where the line starts again; target ids[t + 1] is read after ids[t]
    # Its first character follows a newline, as each line's did: half of them were followed
    # by it.
    assert (length[again - 1].item(), p_copy[again - 1].item()) == (1, 0.5)
    # From then on, the run since the newline matches the first singing and predicts surely.
    assert length[again: again + 10].tolist() == list(range(2, 12))
    assert p_copy[again: again + 10].tolist() == [1.0] * 10
