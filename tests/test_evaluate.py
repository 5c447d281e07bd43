"""Evaluation: the plain loss, and the cache and its repeats (counts/cache.py, repeats.py)
against naive implementations of their definitions; weight tying."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lyricgen import evaluate as evaluation
from lyricgen.counts import cache as continuous_cache
from lyricgen.counts import repeats
from lyricgen.models.charlm import CharacterDropout, CharLM, LockedDropout, ModelConfig

V = 11


def model(**cfg) -> CharLM:
    torch.manual_seed(0)
    cfg = {"hidden_size": 16, "embedding_size": 16, "num_layers": 1, "dropout": 0.0,
           "tie_weights": False, **cfg}
    return CharLM(V, ModelConfig(**cfg)).double().eval()


def naive_cache_loss(h, logp_y, ids, num_steps, window):
    """The cache's loss, then its repeats' over the stream `ids`."""
    return naive_repeat_loss(naive_cache_probs(h, logp_y, ids[1:].tolist(), num_steps, window),
                             ids.tolist())


def naive_cache_probs(h, logp_y, y, num_steps, window):
    """Position by position: every expert's probability of the target, the mixture weighted
    by each expert's likelihood of the targets before, and the memory the cache keeps (the
    last `window` positions before the current window, plus the window so far)."""
    experts = [(None, 0.0)] + [(t, lam) for t in continuous_cache.THETAS
                               for lam in continuous_cache.LAMBDAS]
    log_evidence = [-math.log(len(experts))] * len(experts)
    mixed = []
    for t in range(len(y)):
        first_key = max(0, (t // num_steps) * num_steps - window)
        p_model = math.exp(logp_y[t])
        probs = []
        for theta, lam in experts:
            if theta is None or t == first_key:
                probs.append(p_model)
                continue
            sims = torch.tensor([theta * F.cosine_similarity(h[t], h[j], dim=0).item()
                                 for j in range(first_key, t)], dtype=torch.float64)
            attention = torch.softmax(sims, 0)
            p_cache = sum(a.item() for j, a in zip(range(first_key, t), attention) if y[j] == y[t])
            probs.append((1 - lam) * p_model + lam * p_cache)
        mixed.append(mixture(log_evidence, probs))
    return mixed


def mixture(log_evidence, probs):
    """The Bayesian mixture's probability, the experts' evidence then updated in place."""
    weights = torch.softmax(torch.tensor(log_evidence, dtype=torch.float64), 0)
    for k, p in enumerate(probs):
        log_evidence[k] += math.log(p)
    return sum(w.item() * p for w, p in zip(weights, probs))


def naive_repeat_loss(probs, x):
    """The repeats over the cache's `probs` of the targets x[1:], position by position: the
    longest run ending at t that also ends in the WINDOW positions before, what followed those
    ends, and a mixture over the lambdas per match length."""
    experts = (0.0, *repeats.LAMBDAS)
    evidence = {}  # per match length
    total = 0.0
    for t, p_cached in enumerate(probs):
        window = range(max(0, t - repeats.WINDOW), t)
        def ends(n):
            return [j for j in window if j >= n - 1 and x[j - n + 1: j + 1] == x[t - n + 1: t + 1]]
        length = max([n for n in range(1, min(repeats.LONGEST, t + 1) + 1) if ends(n)], default=0)
        p_copy = (sum(x[j + 1] == x[t + 1] for j in ends(length)) / len(ends(length))
                  if length else 0.0)
        log_evidence = evidence.setdefault(length, [-math.log(len(experts))] * len(experts))
        lams = experts if length else [0.0] * len(experts)
        total -= math.log(mixture(log_evidence, [(1 - lam) * p_cached + lam * p_copy
                                                 for lam in lams]))
    return total / len(probs)


def test_plain_loss_is_the_cross_entropy_of_one_carried_pass():
    lm = model()
    ids = torch.randint(0, V, (300,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = F.cross_entropy(lm(ids[None, :-1])[0][0], ids[1:]).item()
    assert evaluation.evaluate(lm, ids, num_steps=7).loss == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("n, length, warm", [(2, 5, 3), (10, 3, 0), (50, 7, 4), (50, 100, 4),
                                             (51, 10, 25), (64, 63, 1)])
def test_the_rows_score_every_target_once_each_after_its_warm_up(n, length, warm):
    ids = torch.arange(100, 100 + n)  # the ids say where they are in the stream
    rows, scored = evaluation.overlapping_rows(ids, length, warm)
    targets = rows[:, 1:][scored].tolist()
    assert sorted(targets) == list(range(101, 100 + n))  # positions 1..n-1, once each
    for r, j in scored.nonzero().tolist():
        position = int(rows[r, j + 1]) - 100
        assert torch.equal(rows[r, : j + 2], ids[position - j - 1: position + 1])  # the stream
        assert j >= min(warm, position - 1)  # with `warm` characters before, where there are


def test_rows_read_side_by_side_score_what_each_row_read_alone_scores(monkeypatch):
    monkeypatch.setattr(evaluation, "ROW_CHARS", 40)
    monkeypatch.setattr(evaluation, "WARM", 6)
    monkeypatch.setattr(evaluation, "GROUP_ROWS", 3)  # two parts: rows 0-2, then row 3
    lm = model()
    ids = torch.randint(0, V, (150,), generator=torch.Generator().manual_seed(4))
    losses = []
    with torch.no_grad():
        for r in range(4):  # row r: targets 1 + 40 r .. 40 (r + 1), read from 6 before them
            first, end = max(0, 40 * r - 6), min(40 * r + 41, 150)
            logits = lm(ids[None, first: end - 1])[0][0]
            losses.append(F.cross_entropy(logits, ids[first + 1: end],
                                          reduction="none")[40 * r - first:])
    expected = torch.cat(losses).mean().item()
    assert evaluation.evaluate(lm, ids, num_steps=8).loss == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("block", [1, 10, 256])  # 1 window at a time, 2, all 8 at once
def test_cache_loss_matches_its_definition(monkeypatch, block):
    monkeypatch.setattr(continuous_cache, "CACHE_WINDOW", 9)
    monkeypatch.setattr(repeats, "WINDOW", 7)  # shorter than the text's repeat: some found,
    monkeypatch.setattr(repeats, "LONGEST", 4)  # and some not; matches reach the longest
    monkeypatch.setattr(continuous_cache, "CACHE_BLOCK", block)
    lm = model()
    gen = torch.Generator().manual_seed(2)
    ids = torch.cat([torch.randint(0, V, (20,), generator=gen)] * 2)[:37]
    with torch.no_grad():
        h, _ = lm.features(ids[None, :-1])
        logp = torch.log_softmax(lm.logits(h), -1)[0]
    y = ids[1:].tolist()
    logp_y = [logp[t, y[t]].item() for t in range(len(y))]
    expected = naive_cache_loss(h[0], logp_y, ids, num_steps=5, window=9)
    result = evaluation.evaluate(lm, ids, num_steps=5, cache=True)
    assert result.cache_loss == pytest.approx(expected, rel=1e-9)


def test_rows_are_put_back_in_order_and_scored_as_one_stream(monkeypatch):
    """The LSTM reads rows of 12 (after 4 of warm-up), 2 side by side; the counts and the cache
    then read its outputs as one stream: the cache as its definition says, over the outputs
    each target's row gave."""
    monkeypatch.setattr(evaluation, "ROW_CHARS", 12)
    monkeypatch.setattr(evaluation, "WARM", 4)
    monkeypatch.setattr(evaluation, "GROUP_ROWS", 2)
    monkeypatch.setattr(continuous_cache, "CACHE_WINDOW", 9)
    monkeypatch.setattr(repeats, "WINDOW", 7)  # shorter than the text's repeat: some found,
    monkeypatch.setattr(repeats, "LONGEST", 4)  # and some not; matches reach the longest
    lm = model()
    gen = torch.Generator().manual_seed(5)
    ids = torch.cat([torch.randint(0, V, (20,), generator=gen)] * 3)[:50]
    h, logp_y = [], []
    with torch.no_grad():
        for r in range(5):  # row r: targets 1 + 12 r .. 12 (r + 1), read from 4 before them
            first, end = max(0, 12 * r - 4), min(12 * r + 13, 50)
            features, _ = lm.features(ids[None, first: end - 1])
            logp = torch.log_softmax(lm.logits(features), -1)[0]
            skip = 12 * r - first
            h.append(features[0, skip:])
            logp_y += [logp[t, ids[first + t + 1]].item() for t in range(skip, end - 1 - first)]
    y = ids[1:].tolist()
    expected = naive_cache_loss(torch.cat(h), logp_y, ids, num_steps=4, window=9)
    result = evaluation.evaluate(lm, ids, num_steps=4, cache=True)
    assert result.loss == pytest.approx(-sum(logp_y) / len(y), rel=1e-9)
    assert result.cache_loss == pytest.approx(expected, rel=1e-9)


def test_the_input_projection_gives_the_same_features_as_the_embedding_and_w_ih():
    lm = model()
    ids = torch.randint(0, V, (3, 20), generator=torch.Generator().manual_seed(6))
    table = lm.input_projection()
    assert table.shape == (V, 4 * 16)
    with torch.no_grad():
        expected, (h, c) = lm.features(ids)
        got, (h2, c2) = lm.features(ids, projection=table)
    for a, b in ((got, expected), (h2, h), (c2, c)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert model(backend="builtin").input_projection() is None  # nn.LSTM cannot take it
    assert model(input="onehot").input_projection() is None  # a lookup already


def test_the_cache_helps_on_repeated_text():
    lm = model()
    line = torch.randint(0, V, (40,), generator=torch.Generator().manual_seed(3))
    result = evaluation.evaluate(lm, torch.cat([line] * 5), num_steps=16, cache=True)
    assert result.cache_loss < 0.6 * result.loss


def test_tied_weights_share_one_matrix_and_move_between_backends():
    tied = model(tie_weights=True, backend="scratch")
    assert tied.head.weight is tied.embedding.weight
    other = model(tie_weights=True, backend="builtin")
    other.load_state_dict(tied.state_dict())
    ids = torch.randint(0, V, (2, 6))
    assert torch.allclose(tied(ids)[0], other(ids)[0], atol=1e-12)


def test_tying_bridges_differing_sizes_and_leaves_onehot_models_alone():
    bridged = model(tie_weights=True, embedding_size=8)
    assert bridged.head.weight is bridged.embedding.weight
    assert bridged.proj.weight.shape == (8, 16)
    logits, _ = bridged(torch.randint(0, V, (2, 5)))
    assert logits.shape == (2, 5, V)
    onehot = model(tie_weights=True, input="onehot")
    assert onehot.embedding is None and onehot.proj is None
    assert onehot.head.weight.shape == (V, 16)


def test_locked_dropout_keeps_one_mask_per_sequence():
    torch.manual_seed(0)
    drop = LockedDropout(0.5).train()
    out = drop(torch.ones(64, 10, 32))
    assert torch.equal(out, out[:, :1].expand_as(out))  # the same at every time step
    assert set(out.unique().tolist()) == {0.0, 2.0}
    assert abs((out == 0).float().mean().item() - 0.5) < 0.05
    assert torch.equal(drop.eval()(out), out)


def test_character_dropout_drops_a_character_wherever_it_occurs():
    torch.manual_seed(0)
    drop = CharacterDropout(0.5, 200).train()
    ids = torch.randint(0, 200, (8, 30))
    out = drop(torch.ones(8, 30, 4), ids)
    for char in ids.unique():
        values = out[ids == char]  # every occurrence, every dimension
        assert values.unique().numel() == 1 and values[0, 0].item() in (0.0, 2.0)
    dropped = [out[ids == c][0, 0].item() == 0 for c in ids.unique()]
    assert 0.35 < sum(dropped) / len(dropped) < 0.65
    assert torch.equal(drop.eval()(out, ids), out)
