"""Lines sung again (counts/line_repeats.py) against a naive implementation of its definition:
the earlier lines found for each prefix, the mixture over (recent, lambda), and its place in
evaluation before the cache and the repeats."""

from __future__ import annotations

import math
import random

import pytest
import torch

from lyricgen import evaluate as evaluation
from lyricgen.counts import cache as continuous_cache
from lyricgen.counts import line_repeats, repeats
from lyricgen.counts.line_repeats import LineRepeatStream, line_matches
from test_evaluate import V, mixture, model, naive_cache_probs, naive_repeat_loss

NL = 0


def songs(lines: int, seed: int) -> list[int]:
    """Lines of 1 to 5 characters (ids 1..V - 1), half of them an earlier line sung again."""
    rng, out, sung = random.Random(seed), [], []
    for _ in range(lines):
        if sung and rng.random() < 0.5:
            line = rng.choice(sung[-4:])
        else:
            line = [rng.randrange(1, V) for _ in range(rng.randint(1, 5))]
        sung.append(line)
        out += line + [NL]
    return out


def followers(x: list[int], t: int, recent: int) -> list[int] | None:
    """What followed the current line's prefix before target t in each of the `recent` lines
    before it that began so (None past LONGEST)."""
    starts = [0] + [j + 1 for j in range(t) if x[j] == NL]  # lines 0 .. the current one
    prefix = x[starts[-1]: t]
    if len(prefix) > line_repeats.LONGEST:
        return None
    earlier = starts[max(len(starts) - 1 - recent, 0): -1]
    return [x[s + len(prefix)] for s in earlier if x[s: s + len(prefix)] == prefix]


def naive_line_probs(logp_y: list[float], x: list[int]) -> list[float]:
    """Position by position: each (recent, lambda) expert's probability of the target, mixed
    per prefix length by the evidence of the targets before."""
    experts = [(None, 0.0)] + [(r, lam) for r in line_repeats.RECENT for lam in line_repeats.LAMBDAS]
    evidence: dict[int, list[float]] = {}
    out = []
    for t in range(1, len(x)):
        p_model = math.exp(logp_y[t - 1])
        probs = []
        for recent, lam in experts:
            found = followers(x, t, recent) if recent else None
            probs.append((1 - lam) * p_model + lam * found.count(x[t]) / len(found)
                         if found else p_model)
        length = min(t - ([0] + [j + 1 for j in range(t) if x[j] == NL])[-1],
                     line_repeats.LENGTHS - 1)
        out.append(mixture(evidence.setdefault(length, [-math.log(len(experts))] * len(experts)),
                           probs))
    return out


@pytest.fixture
def short(monkeypatch):
    monkeypatch.setattr(line_repeats, "LONGEST", 3)  # some prefixes too long to match
    monkeypatch.setattr(line_repeats, "RECENT", (1, 3))
    monkeypatch.setattr(line_repeats, "LENGTHS", 3)


def test_each_prefix_finds_the_recent_lines_that_began_so(short):
    x = songs(30, seed=1)
    p, length = line_matches(torch.tensor(x), NL)
    for t in range(1, len(x)):
        assert length[t - 1] == t - ([0] + [j + 1 for j in range(t) if x[j] == NL])[-1]
        for k, recent in enumerate(line_repeats.RECENT):
            found = followers(x, t, recent)
            want = found.count(x[t]) / len(found) if found else -1.0
            assert p[k, t - 1].item() == pytest.approx(want, rel=1e-12)


def test_the_mixture_is_the_bayesian_update_position_by_position(short):
    x = songs(30, seed=2)
    logp_y = torch.rand(1, len(x) - 1, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(0)).mul(0.9).add(0.05).log()
    got = LineRepeatStream(torch.tensor(x), NL, torch.device("cpu")).mix(logp_y, 5)
    want = naive_line_probs(logp_y[0].tolist(), x)
    assert torch.allclose(got[0].exp(), torch.tensor(want, dtype=torch.float64), atol=1e-12)


def test_in_evaluation_the_lines_come_before_the_cache_and_its_repeats(short, monkeypatch):
    monkeypatch.setattr(continuous_cache, "CACHE_WINDOW", 9)
    monkeypatch.setattr(repeats, "WINDOW", 7)
    monkeypatch.setattr(repeats, "LONGEST", 4)
    lm = model()
    ids = torch.tensor(songs(12, seed=3))
    with torch.no_grad():
        h, _ = lm.features(ids[None, :-1])
        logp = torch.log_softmax(lm.logits(h), -1)[0]
    logp_y = [logp[t, ids[t + 1]].item() for t in range(len(ids) - 1)]
    lines = [math.log(p) for p in naive_line_probs(logp_y, ids.tolist())]
    expected = naive_repeat_loss(naive_cache_probs(h[0], lines, ids[1:].tolist(), 5, 9),
                                 ids.tolist())
    result = evaluation.evaluate(lm, ids, num_steps=5, cache=True, newline=NL)
    assert result.cache_loss == pytest.approx(expected, rel=1e-9)
    assert result.loss == evaluation.evaluate(lm, ids, num_steps=5, cache=True).loss


def test_lines_sung_again_lower_the_figure_with_the_cache():
    lm = model()
    ids = torch.tensor(songs(200, seed=4))
    with_lines = evaluation.evaluate(lm, ids, num_steps=16, cache=True, newline=NL)
    without = evaluation.evaluate(lm, ids, num_steps=16, cache=True)
    assert with_lines.cache_loss < 0.9 * without.cache_loss
