"""Sampling: greedy against independent loops, seeds, top-k / top-p / temperature against their
definitions, unknown characters, bad values, and the command line."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from conftest import QUIET, cli, lyrics, tiny_options
from lyricgen import checkpoint, sampler
from lyricgen.commands.train import train
from lyricgen.config import SampleConfig
from lyricgen.sampler import generate, pick_next, start_ids, top_p_filter
from lyricgen.data.vocab import Vocab


def sample_cli(*args):
    return cli("sample", *args)


def greedy_by_hand(step, prefix: list[int], length: int) -> list[int]:
    """Feed the prefix one character at a time, then argmax: the book's `predict_rnn`."""
    state, out = None, []
    for i in prefix:
        logits, state = step(i, state)
    for _ in range(length):
        out.append(int(logits.argmax()))
        logits, state = step(out[-1], state)
    return out


def test_greedy_equals_an_argmax_loop_over_the_model(trained):
    saved = checkpoint.load(trained / "best.pt")
    model, vocab = saved.build_model(), saved.vocab
    prefix = vocab.encode("分开")
    ours = generate(model, prefix, SampleConfig(length=40, greedy=True))[0]
    with torch.no_grad():
        def step(i, state):
            logits, state = model(torch.tensor([[i]]), state)
            return logits[0, -1], state
        assert ours == greedy_by_hand(step, prefix, 40)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("backend", ["scratch", "builtin"])
def test_sample_greedy_equals_a_plain_nn_lstm_rebuilt_from_the_checkpoint(
        tmp_path, lyrics_file, layers, backend):
    """Rebuild nn.LSTM + head from the checkpoint's tensors alone (found by nn.LSTM's names)
    and compare greedy text with `lyricgen sample --greedy --no-counts` on either backend."""
    out = tmp_path / "run"
    train(None, tiny_options(lyrics_file, out, input="onehot", num_layers=layers, epochs=2),
          **QUIET)
    payload = torch.load(out / "last.pt", weights_only=True)  # read independently of lyricgen
    weights, chars = payload["model"], payload["vocab"]["chars"]
    V, H = len(chars), weights["rnn.weight_hh_l0"].shape[1]
    lstm, head = nn.LSTM(V, H, layers), nn.Linear(H, V)
    lstm.load_state_dict({k[4:]: v for k, v in weights.items() if k.startswith("rnn.")})
    head.load_state_dict({k[5:]: v for k, v in weights.items() if k.startswith("head.")})

    with torch.no_grad():
        def step(i, state):
            y, state = lstm(nn.functional.one_hot(torch.tensor([[i]]), V).float(), state)
            return head(y[0, 0]), state
        expected = greedy_by_hand(step, [chars.index(c) for c in "分开"], 30)

    result = sample_cli("--checkpoint", out / "last.pt", "--prefix", "分开", "--greedy",
                        "--length", 30, "--backend", backend, "--device", "cpu", "--no-counts",
                        "--max-copy", 0, "--candidates", 1)
    assert result.exit_code == 0, result.output
    assert result.stdout == "分开" + "".join(chars[i] for i in expected) + "\n"


def test_same_seed_same_text_different_seed_different_text(trained):
    args = ["--checkpoint", trained / "best.pt", "--prefix", "月光", "--length", 60]
    a = sample_cli(*args, "--seed", 1).stdout
    assert a == sample_cli(*args, "--seed", 1).stdout
    assert a != sample_cli(*args, "--seed", 2).stdout


def test_top_k_1_equals_greedy(trained):
    args = ["--checkpoint", trained / "best.pt", "--prefix", "风吹", "--length", 50]
    assert sample_cli(*args, "--top-k", 1, "--seed", 3).stdout == \
        sample_cli(*args, "--greedy").stdout


def test_temperature_1_draws_match_the_softmax():
    torch.manual_seed(0)
    logits = torch.randn(1, 8) * 1.5
    n = 40_000
    draws = pick_next(logits.expand(n, 8), SampleConfig(temperature=1.0),
                      torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=8).double() / n
    p = torch.softmax(logits[0].double(), -1)
    # Five standard errors per category: a false alarm is far below one in a million runs.
    assert ((freq - p).abs() <= 5 * (p * (1 - p) / n).sqrt() + 1e-9).all()


def test_low_temperature_approaches_greedy():
    logits = torch.tensor([[1.0, 1.2, 0.5, 1.1]])
    draws = pick_next(logits.expand(1000, 4), SampleConfig(temperature=0.001),
                      torch.Generator().manual_seed(0))
    assert (draws == 1).all()


def test_a_line_start_takes_the_start_temperature_and_the_others_the_temperature(monkeypatch):
    logits = torch.randn(4, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    seen = []
    monkeypatch.setattr(sampler, "draw", lambda probs, generator: seen.append(probs) or
                        probs.argmax(-1))
    cfg = SampleConfig(temperature=0.5, start_temperature=3.0, lines=2)
    pick_next(logits, cfg, None, torch.tensor([True, False, True, False]))
    for row, t in zip(range(4), (3.0, 0.5, 3.0, 0.5)):
        expected = torch.tensor([math.exp(x / t) for x in logits[row].tolist()],
                                dtype=torch.float64)
        torch.testing.assert_close(seen[0][row], expected / expected.sum())


@pytest.mark.parametrize("p", [0.2, 0.5, 0.75, 0.85, 0.97, 1.0])
def test_top_p_keeps_exactly_the_smallest_set_reaching_p(p):
    probs = torch.tensor([[0.05, 0.5, 0.15, 0.3], [0.25, 0.25, 0.25, 0.25]], dtype=torch.float64)
    filtered = top_p_filter(probs, p)
    for row, out in zip(probs.tolist(), filtered):
        order = sorted(range(len(row)), key=lambda i: -row[i])
        kept, mass = set(), 0.0
        for i in order:  # the definition, one id at a time
            if mass >= p:
                break
            kept.add(i)
            mass += row[i]
        assert {i for i, v in enumerate(out.tolist()) if v > 0} == kept
        assert out.sum().item() == pytest.approx(1.0)
        for i in kept:
            assert out[i].item() == pytest.approx(row[i] / mass)


def test_top_k_draws_only_from_the_k_most_likely():
    logits = torch.tensor([[0.1, 3.0, 2.0, -1.0, 2.5]])
    draws = pick_next(logits.expand(5000, 5), SampleConfig(top_k=2),
                      torch.Generator().manual_seed(0))
    assert set(draws.tolist()) == {1, 4}


def test_num_samples_are_one_batch_of_distinct_draws(trained):
    result = sample_cli("--checkpoint", trained / "best.pt", "--prefix", "分开", "--prefix",
                        "月光", "--num-samples", 3, "--length", 40, "--seed", 0, "--json")
    assert result.exit_code == 0, result.output
    samples = json.loads(result.stdout)
    assert [s["prefix"] for s in samples] == ["分开"] * 3 + ["月光"] * 3
    assert all(len(s["text"]) == 40 for s in samples)
    assert len({s["text"] for s in samples}) == 6
    assert samples[0]["settings"]["seed"] == 0 and samples[0]["settings"]["num_samples"] == 3


def test_empty_prefix_starts_from_a_newline_or_a_unigram_draw():
    vocab = Vocab("\nab", [5, 1, 1])
    assert start_ids(vocab, "", "error", None) == ([0], "")
    no_newline = Vocab("ab", [0, 7])  # 'a' never occurs: the draw must give 'b'
    assert start_ids(no_newline, "", "error", torch.Generator().manual_seed(0)) == ([1], "b")


def test_unknown_prefix_characters_can_be_skipped(trained):
    # (refusing them is among the usage errors of test_reliability.py)
    skipped = sample_cli("--checkpoint", trained / "best.pt", "--prefix", "分开Z", "--length",
                         5, "--unknown", "skip", "--greedy")
    assert skipped.exit_code == 0
    assert skipped.stdout.startswith("分开") and "'Z'" in skipped.stderr


def test_each_backend_samples_from_the_others_checkpoint(trained):
    args = ["--checkpoint", trained / "best.pt", "--prefix", "城市", "--length", 40, "--greedy"]
    texts = {b: sample_cli(*args, "--backend", b).stdout for b in ("scratch", "builtin")}
    assert texts["scratch"] == texts["builtin"] and texts["scratch"].startswith("城市")


def test_checkpoint_loads_on_cpu(trained):
    model = checkpoint.load(trained / "best.pt").build_model()
    assert {p.device.type for p in model.parameters()} == {"cpu"}


def test_generated_lines_keep_the_corpus_newlines(trained):
    text = sample_cli("--checkpoint", trained / "best.pt", "--prefix", "分开", "--length", 200,
                      "--greedy").stdout
    assert "\n" in text.strip()
    assert set(text) <= set(lyrics())


@pytest.mark.parametrize("length", [0, 7, 60])
def test_free_text_with_candidates_is_written_a_line_at_a_time_to_its_length(trained, length):
    """The default (8 candidates a line): `--length` characters after the prefix, streamed
    as they are written and the same in JSON; lines of 5 or more characters (the last may
    be cut), each the best of its candidates."""
    args = ["--checkpoint", trained / "best.pt", "--prefix", "月光", "--length", length,
            "--seed", 5]
    streamed = sample_cli(*args)
    assert streamed.exit_code == 0, streamed.output
    (out,) = json.loads(sample_cli(*args, "--json").stdout)
    assert streamed.stdout == "月光" + out["text"] + "\n"
    assert len(out["text"]) == length
    assert "\n".join(line["text"] for line in out["lines"]) == "月光" + out["text"]
    full = out["lines"][:-1]  # the last line may have been cut at `length`
    assert all(len(line["text"].replace(" ", "")) >= 5 and line["score"] is not None
               for line in full)
    # a character at a time (--candidates 1) draws other text from the same seed
    assert sample_cli(*args, "--candidates", 1).stdout != streamed.stdout or length == 0
