"""The joined counts (counts of the text with its line breaks taken out) beside the plain ones:
their histories, their experts' probabilities against the plain-Python Kneser-Ney of
test_ngram.py counted over the joined text, and their use in validation, sampling and
checkpoints."""

from __future__ import annotations


import pytest
import torch

from conftest import assert_one_line_error, cli
from lyricgen import checkpoint
from lyricgen.counts.mixing import CountMixture, MixedStepper
from lyricgen.counts.ngram import NGram
from lyricgen.counts.text_counts import TextCounts, joined_histories, with_line_ends
from lyricgen.evaluate import evaluate
from lyricgen.models.charlm import CharLM, ModelConfig
from lyricgen.models.stepper import Stepper
from test_ngram import random_ids, reference_kn

NL, V, N = 0, 7, 3  # the line break's id, the vocabulary, the order


def lines(length: int, seed: int) -> list[int]:
    """`random_ids` over ids 1..V - 1, a line break after every 5 of them."""
    ids = [1 + i % (V - 1) for i in random_ids(length, V, seed)]
    return [c for k, i in enumerate(ids) for c in ([i, NL] if k % 5 == 4 else [i])]


def joined_before(ids: list[int], t: int, k: int) -> list[int]:
    """The last k - 1 ids other than line breaks before position t (fewer at the start)."""
    kept = [c for c in ids[:t] if c != NL]
    return kept[max(len(kept) - (k - 1), 0):] if k > 1 else []


def joined_reference(train: list[int], k: int):
    """The joined counts of order k as `NGram.by_order` makes them: the k-grams that end an
    n-gram of the text without its line breaks."""
    return reference_kn([c for c in train if c != NL][N - k:], V, k)


def test_joined_histories_are_the_last_characters_that_are_not_line_breaks():
    ids = lines(60, seed=1)
    got = joined_histories(torch.tensor(ids), 4, NL)
    for t in range(1, len(ids)):
        want = joined_before(ids, t, 4)
        assert got[t - 1].tolist() == [-1] * (3 - len(want)) + want


def test_a_text_without_line_breaks_has_no_joined_counts():
    ids = torch.tensor(random_ids(100, V, seed=2))
    assert TextCounts.count(ids, V, N, None).joined is None
    assert TextCounts.count(ids[ids != NL], V, N, NL).joined is None
    assert TextCounts.count(ids, V, N, NL).joined.order == N


def test_each_order_takes_part_as_it_is_with_the_lstms_line_ends_and_joined():
    train, val = lines(400, seed=3), lines(60, seed=4)
    counts = TextCounts.count(torch.tensor(train), V, N, NL)
    p, levels = counts.target_probs(torch.tensor(val))
    assert p.shape == (3 * (N - 1), len(val) - 1)  # orders 2, 3: plain, with ends, joined
    p_end = torch.rand(len(val) - 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ends = torch.tensor(val[1:]) == NL
    q = with_line_ends(p[N - 1:], ends, p_end)
    for j, k in enumerate(range(2, N + 1)):
        plain, joined = reference_kn(train[N - k:], V, k), joined_reference(train, k)
        for t in range(1, len(val)):
            for e, (ref, h) in enumerate([(plain, val[max(t - k + 1, 0): t]),
                                          (joined, joined_before(val, t, k))]):
                want = p_end[t - 1] if val[t] == NL else \
                    (1 - p_end[t - 1]) * ref(h, val[t]) / (1 - ref(h, NL))
                assert q[e * (N - 1) + j, t - 1].item() == pytest.approx(float(want), rel=1e-9)
            assert p[j, t - 1].item() == pytest.approx(plain(val[max(t - k + 1, 0): t], val[t]),
                                                       rel=1e-9)


def test_the_joined_distributions_sum_to_one_and_hold_the_validation_figures():
    train, val = lines(400, seed=5), lines(40, seed=6)
    counts = TextCounts.count(torch.tensor(train), V, N, NL)
    stream = torch.tensor(val)
    p_end = torch.linspace(0.01, 0.99, len(val) - 1, dtype=torch.float64)
    plain = torch.stack([torch.tensor(([-1] * N + val[:t])[-(N - 1):]) for t in range(1, len(val))])
    dists, level = counts.distributions(plain, joined_histories(stream, N, NL), p_end)
    p, levels = counts.target_probs(stream)
    p[N - 1:] = with_line_ends(p[N - 1:], stream[1:] == NL, p_end)
    for d, want in zip(dists, p):
        assert torch.allclose(d.sum(1), torch.ones(len(d), dtype=torch.float64))
        assert torch.allclose(d.gather(1, stream[1:, None])[:, 0], want, atol=1e-12)
    assert torch.equal(level, levels)


def test_validation_mixes_the_joined_counts_with_the_lstms_own_line_end():
    train, val = lines(600, seed=7), lines(120, seed=8)
    torch.manual_seed(0)
    model = CharLM(V, ModelConfig(hidden_size=16, embedding_size=16, dropout=0.0)).eval()
    counts = TextCounts.count(torch.tensor(train), V, N, NL)
    got = evaluate(model, torch.tensor(val), 8, counts=counts)
    # By hand: the LSTM over the whole stream at once, each expert from the references.
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([val[:-1]]))[0][0].double(), -1)
    y = torch.tensor(val[1:])
    logp_y, p_end = logp.gather(1, y[:, None])[:, 0], logp[:, NL].exp()
    experts = []
    for k in range(2, N + 1):
        ref = reference_kn(train[N - k:], V, k)
        experts.append([ref(val[max(t - k + 1, 0): t], val[t]) for t in range(1, len(val))])
    for ref, before in [(lambda k: reference_kn(train[N - k:], V, k),
                         lambda t, k: val[max(t - k + 1, 0): t]),
                        (lambda k: joined_reference(train, k),
                         lambda t, k: joined_before(val, t, k))]:
        for k in range(2, N + 1):
            p_k = ref(k)
            experts.append([p_end[t - 1].item() if val[t] == NL else
                            (1 - p_end[t - 1].item()) * p_k(h, val[t]) / (1 - p_k(h, NL))
                            for t in range(1, len(val)) for h in [before(t, k)]])
    p = torch.tensor(experts, dtype=torch.float64)[:, None]  # (experts, 1, T)
    levels = counts.ngram.longest(torch.tensor([([-1] * N + val[:t])[-(N - 1):]
                                                for t in range(1, len(val))]))[None]
    mixture = CountMixture(1, N, len(experts), torch.device("cpu"))
    want = torch.cat([mixture.read(logp_y[None, s: s + 8], p[:, :, s: s + 8], levels[:, s: s + 8])
                      for s in range(0, len(y), 8)], 1)
    assert got.loss == pytest.approx(-want.mean().item(), rel=1e-6)
    assert [w for level in got.count_weights for w in level] == pytest.approx(
        [w for level in mixture.weights() for w in level], abs=1e-6)
    assert len(got.count_weights[0]) == 3 * (N - 1)


def test_the_mixed_stepper_keeps_the_joined_history_across_line_breaks():
    torch.manual_seed(1)
    model = CharLM(V, ModelConfig(hidden_size=12, embedding_size=12)).eval()
    train = lines(400, seed=9)
    counts = TextCounts.count(torch.tensor(train), V, N, NL)
    weights = [[0.1, 0.1, 0.1, 0.0, 0.2, 0.1], [0.1, 0.1, 0.1, 0.1, 0.1, 0.3],
               [0.0, 0.1, 0.2, 0.1, 0.1, 0.3]]  # per level: orders 2, 3 three ways
    prefix = [3, NL]
    with torch.inference_mode():
        _, state = model(torch.tensor([prefix]))
        state = tuple(s.expand(-1, 2, -1) for s in state)
        mixed = MixedStepper(Stepper(model, state), counts, weights, prefix)
        plain = Stepper(model, state)
        for ids in ([4, 5], [NL, 6]):  # stream 0 breaks its line, stream 1 does not
            got = mixed.step(torch.tensor(ids))
            p_lstm = torch.softmax(plain.step(torch.tensor(ids)).double(), -1)
    streams = [[3, NL, 4, NL], [3, NL, 5, 6]]
    for s, ids in enumerate(streams):
        level = int(counts.ngram.longest(torch.tensor([ids[-(N - 1):]])))
        w = weights[level]
        p_end = p_lstm[s, NL].item()
        want = []
        for y in range(V):
            p = (1 - sum(w)) * p_lstm[s, y].item()
            for k in range(2, N + 1):
                plain, h = reference_kn(train[N - k:], V, k), ids[len(ids) - k + 1:]
                joined, h_joined = joined_reference(train, k), joined_before(ids, len(ids), k)
                p += w[k - 2] * plain(h, y)
                for e, (ref, h) in enumerate([(plain, h), (joined, h_joined)], 1):
                    p += w[e * (N - 1) + k - 2] * (p_end if y == NL else
                                                   (1 - p_end) * ref(h, y) / (1 - ref(h, NL)))
            want.append(p)
        assert torch.allclose(got[s].double().exp(), torch.tensor(want, dtype=torch.float64),
                              atol=1e-5)


def test_the_saved_joined_counts_give_the_same_model_and_a_misfit_is_one_error_line(
        trained, tmp_path):
    counts = TextCounts.count(torch.tensor(lines(300, seed=10)), V, N, NL)
    again = TextCounts.from_state_dict(counts.state_dict())
    history = torch.tensor([[a, b] for a in range(-1, V) for b in range(V)])
    for m, m2 in zip(counts.ngram.by_order() + counts.joined.by_order(),
                     again.ngram.by_order() + again.joined.by_order(), strict=True):
        assert torch.equal(m.distribution(history[:, N - m.order:]),
                           m2.distribution(history[:, N - m.order:]))
    assert again.newline == NL and again.experts() == 3 * (N - 1)
    saved = checkpoint.load(trained / "best.pt", training_state=True)
    joined = NGram.from_state_dict(saved.counts["joined"]).lower(2).state_dict()
    not_a_break = (saved.counts["newline"] + 1) % len(saved.vocab)
    good = saved.counts
    for bad in ({"joined": joined}, {"newline": not_a_break}):  # another order; not "\n"
        saved.counts = {**good, **bad}
        checkpoint.save(saved, tmp_path / "bad.pt")
        result = cli("sample", "--checkpoint", tmp_path / "bad.pt", "--length", 5)
        assert_one_line_error(result, 1, "bad.pt is damaged", "do not fit")
