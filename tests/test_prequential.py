"""The prequential mixture (counts/prequential.py) against a loop over characters: at each
position, each expert's weight is its prior times its likelihood of the earlier scored
positions of the same row and group, whatever windows the stream is read in."""

from __future__ import annotations

import math

import pytest
import torch

from lyricgen.counts.prequential import Prequential

K, R, N, G = 5, 3, 30, 4
WINDOWS = (7, 1, 12, 10)  # uneven, so positions of a group straddle windows


def stream(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each expert's log p(y) (K, R, N), probabilities in [0.05, 1); groups and scored (R, N)."""
    gen = torch.Generator().manual_seed(seed)
    p = 0.05 + 0.95 * torch.rand(K, R, N, generator=gen, dtype=torch.float64)
    group = torch.randint(0, G, (R, N), generator=gen)
    return p.log(), group, torch.rand(R, N, generator=gen) < 0.7


def brute_force(log_p: torch.Tensor, group: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
    """log p(y) (R, N) of the mixture, one position at a time, in probabilities (no logs)."""
    want = torch.empty(R, N, dtype=torch.float64)
    for r in range(R):
        for t in range(N):
            earlier = [s for s in range(t) if group[r, s] == group[r, t] and scored[r, s]]
            weights = [math.prod(math.exp(log_p[k, r, s]) for s in earlier) / K for k in range(K)]
            mixed = sum(w * math.exp(log_p[k, r, t]) for k, w in enumerate(weights))
            want[r, t] = math.log(mixed / sum(weights))
    return want


def read_in_windows(mixture: Prequential, log_p, group=None, scored=None) -> torch.Tensor:
    got, start = [], 0
    for length in WINDOWS:
        at = slice(start, start + length)
        got.append(mixture.read(log_p[:, :, at], None if group is None else group[:, at],
                                None if scored is None else scored[:, at]))
        start += length
    assert start == N
    return torch.cat(got, 1)


@pytest.mark.parametrize("seed", [0, 1])
def test_each_position_is_weighted_by_the_earlier_scored_positions_of_its_group(seed):
    log_p, group, scored = stream(seed)
    got = read_in_windows(Prequential(K, R, G), log_p, group, scored)
    torch.testing.assert_close(got, brute_force(log_p, group, scored), rtol=0, atol=1e-12)


def test_one_group_all_scored_is_one_mixture_per_row():
    log_p, _, _ = stream(2)
    everything = torch.ones(R, N, dtype=torch.bool)
    got = read_in_windows(Prequential(K, R), log_p)
    want = brute_force(log_p, torch.zeros(R, N, dtype=torch.long), everything)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_the_posterior_pools_the_rows_scored_evidence_per_group():
    log_p, group, scored = stream(3)
    mixture = Prequential(K, R, G)
    read_in_windows(mixture, log_p, group, scored)
    want = torch.empty(K, G, dtype=torch.float64)
    for g in range(G):
        mine = (group == g) & scored  # (R, N)
        likelihood = [math.prod(math.exp(x) for x in log_p[k][mine].tolist()) for k in range(K)]
        want[:, g] = torch.tensor(likelihood, dtype=torch.float64) / sum(likelihood)
    torch.testing.assert_close(mixture.posterior(), want, rtol=1e-10, atol=0)
