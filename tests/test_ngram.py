"""The counts beside the LSTM: the n-gram model against a plain-Python Kneser-Ney written from the
definitions, the online mixture against a position-by-position Bayesian update, and the mix
in validation, checkpoints and sampling."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict

import pytest
import torch

from conftest import assert_one_line_error, cli
from lyricgen import checkpoint
from lyricgen.evaluate import evaluate
from lyricgen.counts.mixing import WEIGHTS, CountMixture, MixedStepper
from lyricgen.models.charlm import CharLM, ModelConfig
from lyricgen.models.stepper import Stepper
from lyricgen.counts.ngram import NGram, histories
from lyricgen.counts.text_counts import TextCounts


def reference_kn(ids: list[int], V: int, n: int):
    """Interpolated modified Kneser-Ney, counted with dicts straight from the definitions."""
    grams = Counter(tuple(ids[i:i + n]) for i in range(len(ids) - n + 1))
    # counts[j][(context of j chars, w)]: raw at the top order, continuation counts below
    counts = [defaultdict(int) for _ in range(n)]
    for g, c in grams.items():
        counts[n - 1][(g[:-1], g[-1])] = c
    for j in range(n - 2, -1, -1):
        for (ctx, w) in counts[j + 1]:
            counts[j][(ctx[1:], w)] += 1  # one more distinct character before (ctx[1:], w)
    discounts = []
    for j in range(n):
        nk = [sum(1 for c in counts[j].values() if c == k) for k in (1, 2, 3, 4)]
        y = nk[0] / (nk[0] + 2 * nk[1]) if nk[0] + nk[1] else 0.5
        d = [0.0] + [min(max(k - (k + 1) * y * nk[k] / nk[k - 1], 0.0), k) if nk[k - 1] else 0.5
                     for k in (1, 2, 3)]
        discounts.append(d)

    def prob(history: list[int], w: int) -> float:
        p = 1.0 / V
        for j in range(n):
            if j > len(history):
                break
            ctx = tuple(history[len(history) - j:]) if j else ()
            pairs = {v: c for (cx, v), c in counts[j].items() if cx == ctx}
            if not pairs:
                break  # an unseen context: longer ones are unseen too
            total = sum(pairs.values())
            gamma = sum(discounts[j][min(c, 3)] for c in pairs.values())
            c = pairs.get(w, 0)
            p = (max(c - discounts[j][min(c, 3)], 0) + gamma * p) / total
        return p

    return prob


def random_ids(length: int, V: int, seed: int) -> list[int]:
    """A stream with some structure (a few favourite successors per character)."""
    rng = random.Random(seed)
    follow = {v: rng.sample(range(V), 3) for v in range(V)}
    ids = [0]
    for _ in range(length - 1):
        ids.append(rng.choice(follow[ids[-1]]) if rng.random() < 0.8 else rng.randrange(V))
    return ids


@pytest.mark.parametrize("n", [2, 3, 4])
def test_the_counts_give_the_probabilities_of_kneser_ney_written_from_its_definitions(n):
    V = 7
    train, held = random_ids(400, V, seed=n), random_ids(60, V, seed=10 + n)
    model = NGram.count(torch.tensor(train), V, n)
    expected = reference_kn(train, V, n)
    rows = torch.tensor([held])
    got = model.prob(histories(rows, n)[0], rows[0, 1:])
    want = [expected(held[max(0, t - n + 1):t], held[t]) for t in range(1, len(held))]
    assert torch.allclose(got, torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=0)


def test_a_hand_computed_bigram():
    # "abcab" as ids 0 1 2 0 1; bigrams ab x2, bc, ca. Top order: n1 = 2, n2 = 1, so
    # Y = 2 / (2 + 2) = 1/2, D1 = 1 - 2 Y n2 / n1 = 1/2, D2 = 2 - 3 Y n3 / n2 = 2, D3+ = 0.5
    # (n3 = 0). Below, each character has one distinct predecessor: continuation counts
    # 1, 1, 1, so D1 = 1 (n2 = 0) and p_0 = (0 + 3 * 1 * 1/3) / 3 = 1/3 for every character.
    # p(c | b) = (max(1 - 1/2, 0) + D1 * 1 * p_0(c)) / 1 = 1/2 + 1/6 = 2/3;
    # p(a | b) = (0 + 1/2 * 1/3) / 1 = 1/6; p(b | a) = (max(2 - 2, 0) + 2 * 1/3) / 2 = 1/3.
    model = NGram.count(torch.tensor([0, 1, 2, 0, 1]), 3, 2)
    history = torch.tensor([[1], [1], [0]])
    got = model.prob(history, torch.tensor([2, 0, 1]))
    assert torch.allclose(got, torch.tensor([2 / 3, 1 / 6, 1 / 3], dtype=torch.float64))


def test_the_distribution_sums_to_one_and_holds_each_probability():
    V, n = 9, 4
    model = NGram.count(torch.tensor(random_ids(500, V, seed=3)), V, n)
    history = torch.tensor([[-1, -1, 4], [1, 2, 3], [8, 8, 8], [-1, -1, -1]])
    dist = model.distribution(history)
    assert torch.allclose(dist.sum(1), torch.ones(4, dtype=torch.float64))
    for w in range(V):
        assert torch.allclose(dist[:, w], model.prob(history, torch.full((4,), w)))


def test_a_text_shorter_than_the_order_is_counted_at_its_own_length(tmp_path):
    assert NGram.count(torch.tensor([0, 1, 2]), 3, 5).order == 3
    data = tmp_path / "tiny.txt"
    data.write_text("分开不要走\n你", encoding="utf-8")
    result = cli("train", "--data", data, "--batch-size", 1, "--num-steps", 1, "--val-fraction",
                 0.5, "--epochs", 1, "--hidden-size", 8, "--embedding-size", 8, "--out",
                 tmp_path / "run", "--device", "cpu")
    assert result.exit_code == 0, result.output
    counts, _ = checkpoint.load(tmp_path / "run" / "best.pt").count_model()
    assert counts.order == 4  # 7 characters, 3 held out: the 4 of the training text


def test_the_saved_counts_give_the_same_model():
    V = 6
    model = NGram.count(torch.tensor(random_ids(300, V, seed=5)), V, 3)
    again = NGram.from_state_dict(model.state_dict())
    history = torch.tensor([[a, b] for a in range(-1, V) for b in range(V)])
    assert torch.equal(again.distribution(history), model.distribution(history))


def test_the_online_mixture_is_the_bayesian_update_position_by_position():
    torch.manual_seed(0)
    R, T, levels, orders = 2, 12, 3, 2
    mixture = CountMixture(R, levels, orders, torch.device("cpu"))
    windows = [(torch.rand(R, T).log(), torch.rand(orders, R, T).double(),
                torch.randint(0, levels, (R, T)), torch.ones(R, T, dtype=torch.bool))
               for _ in range(2)]
    got = torch.cat([mixture.read(*w) for w in windows], 1)
    # By hand: per row and level, a posterior over the experts (the LSTM alone, then each
    # order's weights), updated after each position.
    lstm, level = torch.cat([w[0] for w in windows], 1), torch.cat([w[2] for w in windows], 1)
    counts = torch.cat([w[1] for w in windows], 2)
    experts = [(None, 0.0)] + [(k, w) for k in range(orders) for w in WEIGHTS]
    want = torch.zeros(R, 2 * T, dtype=torch.float64)
    posterior = {}
    for r in range(R):
        for t in range(2 * T):
            key = (r, int(level[r, t]))
            log_post = posterior.get(key, [-math.log(len(experts))] * len(experts))
            p_each = [(1 - w) * math.exp(lstm[r, t]) + (w * counts[k, r, t] if w else 0.0)
                      for k, w in experts]
            norm = max(log_post)
            post = [math.exp(x - norm) for x in log_post]
            want[r, t] = math.log(sum(q * p for q, p in zip(post, p_each)) / sum(post))
            posterior[key] = [x + math.log(p) for x, p in zip(log_post, p_each)]
    assert torch.allclose(got, want, atol=1e-10)
    # The weights sampling uses: per level and order, the posterior mean of w, rows pooled.
    pooled = {b: [sum(posterior[(r, b)][i] for r in range(R)) for i in range(len(experts))]
              for b in range(levels)}
    for b, log_post in pooled.items():
        post = torch.softmax(torch.tensor(log_post, dtype=torch.float64), 0).tolist()
        for k in range(orders):
            mean = sum(q * w for q, (order, w) in zip(post, experts) if order == k)
            assert mixture.weights()[b][k] == pytest.approx(mean, abs=1e-12)


def test_each_lower_order_is_the_model_counted_at_that_order():
    V, n = 5, 4
    ids = torch.tensor(random_ids(400, V, seed=9))
    models = NGram.count(ids, V, n).by_order()
    assert [m.order for m in models] == [2, 3, 4]
    for k, model in zip((2, 3), models):
        # The k-grams that end an n-gram: the text's, from position n - k on.
        alone = NGram.count(ids[n - k:], V, k)
        history = torch.tensor([[a] * (k - 2) + [b] for a in range(-1, V) for b in range(V)])
        assert torch.allclose(model.distribution(history), alone.distribution(history),
                              atol=1e-12)


def test_validation_with_counts_reports_the_lstm_alone_as_without_them():
    V = 11
    ids = torch.tensor(random_ids(900, V, seed=7))
    torch.manual_seed(0)
    model = CharLM(V, ModelConfig(hidden_size=16, embedding_size=16, dropout=0.0))
    counts = TextCounts(NGram.count(ids[:700], V, 3))
    alone = evaluate(model, ids[700:], 8)
    mixed = evaluate(model, ids[700:], 8, counts=counts)
    assert mixed.lstm_loss == pytest.approx(alone.loss, rel=1e-9)
    assert mixed.loss < alone.loss  # an untrained LSTM: the counts know the text far better
    weights = mixed.count_weights  # per level (3), per order (2 and 3)
    assert len(weights) == 3 and all(len(w) == 2 and 0 <= sum(w) <= 0.9 for w in weights)


def test_the_mixed_stepper_samples_from_the_mixture_and_rewinds_with_its_columns():
    V = 8
    torch.manual_seed(1)
    model = CharLM(V, ModelConfig(hidden_size=12, embedding_size=12)).eval()
    counts = NGram.count(torch.tensor(random_ids(400, V, seed=2)), V, 3)
    weights = [[0.1, 0.1], [0.2, 0.3], [0.0, 0.7]]  # per level, for orders 2 and 3
    prefix = [3, 4, 5]
    with torch.inference_mode():
        _, state = model(torch.tensor([prefix]))
        state = tuple(s.expand(-1, 2, -1) for s in state)
        mixed = MixedStepper(Stepper(model, state), TextCounts(counts), weights, prefix)
        plain = Stepper(model, state)
        saved = [c.clone() for c in mixed.columns()]
        for ids in ([1, 2], [6, 0]):
            ids = torch.tensor(ids)
            got = mixed.step(ids)
            lstm = torch.softmax(plain.step(ids).double(), -1)
        history = torch.tensor([[1, 6], [2, 0]])  # each stream's last two characters
        w = torch.tensor(weights, dtype=torch.float64)[counts.longest(history)]  # (2, 2)
        bigram = NGram.count(torch.tensor(random_ids(400, V, seed=2))[1:], V, 2)
        want = ((1 - w.sum(1, keepdim=True)) * lstm + w[:, :1] * bigram.distribution(
            history[:, 1:]) + w[:, 1:] * counts.distribution(history)).log()
        assert torch.allclose(got.double(), want, atol=1e-5)
        for live, kept in zip(mixed.columns(), saved):  # rewind to the start
            live.copy_(kept)
        again = mixed.step(torch.tensor([1, 2]))
        assert torch.allclose(again, MixedStepper(Stepper(model, state), TextCounts(counts),
                                                  weights, [3, 4, 5]).step(torch.tensor([1, 2])))


def test_a_checkpoint_from_before_orders_were_mixed_weighs_its_highest_order(trained, tmp_path):
    saved = checkpoint.load(trained / "best.pt", training_state=True)
    old = {k: v for k, v in saved.counts.items() if k not in ("joined", "newline")}
    saved.counts = {**old, "weights": [0.1, 0.2, 0.3, 0.4, 0.5]}  # one per level
    checkpoint.save(saved, tmp_path / "old.pt")
    _, weights = checkpoint.load(tmp_path / "old.pt").count_model()
    assert weights == [[0.0, 0.0, 0.0, w] for w in (0.1, 0.2, 0.3, 0.4, 0.5)]
    assert cli("sample", "--checkpoint", tmp_path / "old.pt", "--length", 5).exit_code == 0


def test_a_trained_checkpoint_keeps_its_counts_and_sample_uses_them(trained):
    best = trained / "best.pt"
    saved = checkpoint.load(best, training_state=True)
    counts, weights = saved.count_model()
    assert counts.ngram.vocab_size == len(saved.vocab) and len(weights) == counts.order
    assert counts.newline == saved.vocab.index["\n"] and counts.joined.order == counts.order
    assert all(len(level) == 3 * (counts.order - 1) for level in weights)  # three ways
    history = saved.history[-1]
    assert weights == history["count_weights"] and "val_ppl_lstm" in history
    args = ["sample", "--checkpoint", best, "--prefix", "分开", "--length", "30",
            "--seed", "3"]
    with_counts, without = cli(*args), cli(*args, "--no-counts")
    assert with_counts.exit_code == 0 and without.exit_code == 0
    assert with_counts.output != without.output


def test_a_checkpoint_whose_counts_do_not_fit_is_one_error_line(trained, tmp_path):
    saved = checkpoint.load(trained / "best.pt", training_state=True)
    saved.counts = {**saved.counts, "weights": [0.5]}  # one weight for five orders
    checkpoint.save(saved, tmp_path / "bad.pt")
    result = cli("sample", "--checkpoint", tmp_path / "bad.pt", "--length", 5)
    assert_one_line_error(result, 1, "bad.pt is damaged", "do not fit")
    assert cli("sample", "--checkpoint", tmp_path / "bad.pt", "--length", 5,
               "--no-counts").exit_code == 0  # the LSTM alone still samples
