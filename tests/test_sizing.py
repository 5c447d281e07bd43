"""The default sizes itself: the rule, the choice printed before training, and what was given
(options, a preset, --init-from's model) wins."""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace

import pytest

from conftest import QUIET, TINY, cli, lyrics
from lyricgen import checkpoint, sizing
from lyricgen.commands.train import train
from lyricgen.config import Config, DataConfig, TrainConfig
from lyricgen.data.corpus import load_corpus
from lyricgen.models.charlm import ModelConfig
from lyricgen.training import probe as speed_probe
from lyricgen.training.setup import set_up

SIZED = {"dropout", "embedding_dropout", "weight_decay"}
# Wide enough that the generated text is little for its weights (the rule's middle range).
UNPINNED = {**{k: v for k, v in TINY.items() if k not in SIZED}, "hidden_size": 128}


def run_expected(run, passes: float) -> tuple[float, float, float]:
    """The rule's choice for a finished run: its model's own parameter count, its corpus."""
    saved = checkpoint.load(run / "last.pt")
    weights = sum(p.numel() for p in saved.build_model().parameters())
    chars = len(load_corpus(saved.config.data, progress=False).train_ids)
    return expected(passes, chars / weights)


def expected(passes: float, per_weight: float) -> tuple[float, float, float]:
    """The documented rule, written out: the strength is the lesser of the text's (from 0.02
    characters per weight down to 0.1, log-linear) and the budget's (2 to 20 passes)."""
    by_text = (math.log(0.1) - math.log(per_weight)) / (math.log(0.1) - math.log(0.02))
    by_passes = (math.log(passes) - math.log(2)) / (math.log(20) - math.log(2))
    return at(min(max(by_text, 0), 1, max(by_passes, 0)))


def at(s: float) -> tuple[float, float, float]:
    """Dropout, embedding dropout and weight decay of strength s, as documented."""
    return 0.1 + 0.55 * s, 0.25 * s, 0.01 * 30 ** s


def regularisation(run, epoch: int) -> tuple[float, float, float]:
    """What `epoch` of the run trained with (training may raise it: training/regularising.py),
    from its row of metrics.jsonl."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return at(rows[epoch - 1]["strength"])


@pytest.mark.parametrize("passes", [0.3, 2, 3.5, 7, 19, 20, 400])
@pytest.mark.parametrize("per_weight", [0.001, 0.02, 0.03, 0.06, 0.1, 5.0])
def test_the_rule_goes_from_light_to_the_tuned_lyrics_settings(passes, per_weight):
    c = sizing.choose(passes, per_weight).values
    assert (c["dropout"], c["embedding_dropout"], c["weight_decay"]) == \
        pytest.approx(expected(passes, per_weight), abs=1e-3)


def test_a_small_text_read_often_gets_the_default_preset_s_settings():
    c = sizing.choose(50, 0.017).values  # the Jay Chou lyrics for the default model
    preset = Config()
    assert (c["dropout"], c["embedding_dropout"], c["weight_decay"]) == \
        (preset.model.dropout, preset.model.embedding_dropout, preset.train.weight_decay)


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "lyrics.txt"
    path.write_text(lyrics(), encoding="utf-8")
    return load_corpus(DataConfig(data=str(path)), progress=False)


def test_a_time_limit_counts_the_passes_at_the_measured_speed(corpus):
    cfg = Config(train=TrainConfig(time_limit=0.5, epochs=50))
    cfg = replace(cfg, model=replace(cfg.model, hidden_size=8, embedding_size=8))
    chosen = sizing.size(cfg, corpus, set(), speed=lambda c, k: 400.0)
    sized, line = chosen.cfg, chosen.line
    measured = 0.5 * 60 * 400 / len(corpus.train_ids)
    passes = 2 ** (round(math.log(measured, math.sqrt(2))) / 2)  # the nearest power of sqrt(2)
    assert passes / 2**0.25 <= measured <= passes * 2**0.25
    # an embedding V x 8 (the output layer shares it), 4 gates of 8 units over 8 + 8 inputs
    # and two biases, the output bias V
    V = len(corpus.vocab)
    per_weight = len(corpus.train_ids) / (V * 8 + 4 * 8 * (8 + 8 + 2) + V)
    assert (sized.model.dropout, sized.model.embedding_dropout, sized.train.weight_decay) == \
        pytest.approx(expected(passes, per_weight), abs=1e-3)
    assert f"about {passes:.1f} passes" in line and "400 characters/s" in line
    assert "pins each" in line


def test_runs_measuring_different_speeds_around_the_same_point_choose_alike(corpus):
    """A seed repeats a run though the measured speed varies: speeds 12% below and above one
    that gives 4 passes choose the same settings; one that gives twice the passes does not."""
    # the default model: few characters a weight, so that the passes decide
    cfg = Config(train=TrainConfig(epochs=50, time_limit=4 * len(corpus.train_ids) / (60 * 400)))
    chosen = [sizing.size(cfg, corpus, set(), speed=lambda c, k: speed).cfg
              for speed in (352.0, 400.0, 448.0, 800.0)]
    assert chosen[0] == chosen[1] == chosen[2] != chosen[3]


def test_the_speed_is_that_of_the_runs_own_steps_after_the_warm_up(corpus, monkeypatch):
    """The probe sets the run up as training would (its model without the counts, its batch
    shape), leaves the warm-up steps out of the timing, and divides characters by seconds: here
    each warm-up step takes 0.3 s and each timed one 0.05 s, so 32 characters a step give
    640 characters/s."""
    cfg = Config(model=ModelConfig(hidden_size=16, embedding_size=8),
                 train=TrainConfig(batch_size=4, num_steps=8, device="cpu"))
    probed, shapes = [], []

    def timed_set_up(probe, corpus, log):
        setup = set_up(probe, corpus, log=log)
        probed.append(probe)

        def step(X, Y, hidden):
            shapes.append(tuple(X.shape))
            setup.step(X, Y, hidden)  # the real step runs too
            time.sleep(0.3 if len(shapes) <= speed_probe.WARM_UP_STEPS else 0.05)
        return replace(setup, step=step)

    monkeypatch.setattr(speed_probe, "set_up", timed_set_up)
    speed = speed_probe.measure_speed(cfg, corpus)
    assert [p.model.ngram_order for p in probed] == [0]
    assert probed[0].model.hidden_size == 16 and set(shapes) == {(4, 8)}
    assert 2 <= len(shapes) - speed_probe.WARM_UP_STEPS <= 10
    assert 32 / 0.05 * 0.8 < speed <= 32 / 0.05


def test_train_prints_its_choice_and_trains_with_it(tmp_path):
    data = tmp_path / "lyrics.txt"
    data.write_text(lyrics(), encoding="utf-8")
    logged = []
    train(None, {"data": str(data), "out": str(tmp_path / "run"), **UNPINNED, "epochs": 7},
          log=logged.append, progress_bar=False)
    want = run_expected(tmp_path / "run", 7)
    assert 0.1 < want[0] < 0.65  # between the ends
    assert regularisation(tmp_path / "run", 1) == pytest.approx(want, abs=1e-3)
    line = next(m for m in logged if m.startswith("sized for"))
    assert f"dropout {want[0]:.2f}" in line and "about 7.0 passes" in line


def test_what_is_given_wins_and_is_named(tmp_path):
    data = tmp_path / "lyrics.txt"
    data.write_text(lyrics(), encoding="utf-8")
    logged = []
    train(None, {"data": str(data), "out": str(tmp_path / "run"), **UNPINNED, "epochs": 2,
                 "dropout": 0.33}, log=logged.append, progress_bar=False)
    saved = checkpoint.load(tmp_path / "run" / "last.pt").config
    assert saved.model.dropout == 0.33
    assert regularisation(tmp_path / "run", 1)[2] == \
        pytest.approx(run_expected(tmp_path / "run", 2)[2], abs=1e-3)
    line = next(m for m in logged if m.startswith("sized for"))
    assert line.endswith("(dropout as given)") and "dropout 0.1" not in line
    assert "embedding dropout" in line and "weight decay" in line


def test_a_preset_that_pins_the_settings_is_used_as_it_is(tmp_path):
    data = tmp_path / "lyrics.txt"
    data.write_text(lyrics(), encoding="utf-8")
    preset = tmp_path / "p.toml"
    preset.write_text("[model]\ndropout = 0.5\nembedding_dropout = 0.2\n"
                      "[train]\nweight_decay = 0.05\n", encoding="utf-8")
    result = cli("train", "--config", preset, "--data", data, "--out", tmp_path / "run",
                 "--hidden-size", 16, "--embedding-size", 8, "--epochs", 1, "--num-steps", 8,
                 "--batch-size", 4, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "sized for" not in result.output
    saved = checkpoint.load(tmp_path / "run" / "last.pt").config
    assert (saved.model.dropout, saved.model.embedding_dropout, saved.train.weight_decay) == \
        (0.5, 0.2, 0.05)


def test_fine_tuning_sizes_the_regularisation_afresh_for_the_new_text(tmp_path):
    data = tmp_path / "lyrics.txt"
    data.write_text(lyrics(), encoding="utf-8")
    source = {"data": str(data), "out": str(tmp_path / "a"), **TINY, "hidden_size": 128,
              "dropout": 0.5}
    train(None, source, **QUIET)
    logged = []
    options = {k: v for k, v in UNPINNED.items() if k not in ("hidden_size", "embedding_size")}
    train(None, {"data": str(data), "out": str(tmp_path / "b"), **options, "epochs": 7,
                 "init_from": str(tmp_path / "a" / "best.pt")}, log=logged.append,
          progress_bar=False)
    saved = checkpoint.load(tmp_path / "b" / "last.pt").config
    assert (saved.model.hidden_size, saved.model.embedding_size) == (128, 16)  # the source's
    assert regularisation(tmp_path / "b", 1) == \
        pytest.approx(run_expected(tmp_path / "b", 7), abs=1e-3)
