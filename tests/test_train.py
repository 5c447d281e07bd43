"""Training: perplexity, metrics file, checkpoints, resume equality, the schedule, presets and
config layering."""

from __future__ import annotations

import io
import json
import math
import os
import signal

import pytest
import torch
import torch.nn.functional as F
from rich.console import Console
from typer.testing import CliRunner

from conftest import (QUIET, TINY, assert_one_line_error, cli, cli_args, lyrics, tiny_options,
                      without_timings)
from lyricgen import checkpoint, memory, tables
from lyricgen.cli import app
from lyricgen.commands import train as train_command
from lyricgen.commands.train import train
from lyricgen.config import Config
from lyricgen.presets import load_config
from lyricgen.data.corpus import load_corpus
from lyricgen.errors import LyricgenError, UsageError
from lyricgen.evaluate import Evaluation
from lyricgen.models.charlm import CharLM, ModelConfig
from lyricgen.training import loop, reporting, setup, step, validation
from lyricgen.checkpoint import Progress
from lyricgen.training.schedule import Schedule
from lyricgen.training.step import TrainStep


def metrics(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_perplexity_falls_and_metrics_are_written(lyrics_file, tmp_path):
    result = train(None, tiny_options(lyrics_file, tmp_path / "run", epochs=4), **QUIET)
    rows = metrics(tmp_path / "run")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows == result.history
    for row in rows:
        assert set(row) >= {"epoch", "train_ppl", "val_ppl", "seconds", "tokens_per_s", "lr",
                            "val_seconds"}
        assert row["seconds"] > 0 and row["tokens_per_s"] > 0 and row["lr"] == 0.01
        assert row["val_seconds"] > 0
    assert rows[-1]["train_ppl"] < rows[0]["train_ppl"] / 2
    assert rows[-1]["val_ppl"] < rows[0]["val_ppl"]


def test_perplexities_match_an_independent_computation(lyrics_file, tmp_path):
    """With a negligible learning rate the weights stay the initial ones, so the epoch's
    training perplexity is exp(mean CE) of the seed's model over the book's consecutive
    windows, and validation is the held-out text run in one piece (the state carried): the
    LSTM's own figure (val_ppl is its mix with the counts, tested in test_ngram.py)."""
    B, T = 4, 10
    options = tiny_options(lyrics_file, tmp_path / "run", epochs=1, lr=1e-30, batch_size=B,
                           num_steps=T, optimizer="sgd", clip=0.0)
    row = train(None, options, **QUIET).history[0]

    cfg = Config().with_overrides(options)
    corpus = load_corpus(cfg.data)
    torch.manual_seed(cfg.train.seed)
    model = CharLM(len(corpus.vocab), cfg.model).eval()
    ids = corpus.train_ids.long()
    row_len = len(ids) // B
    rows = ids[: B * row_len].view(B, row_len)
    losses = []
    with torch.no_grad():
        state = None
        for j in range(0, (row_len - 1) // T * T, T):
            logits, state = model(rows[:, j:j + T], state)
            losses.append(F.cross_entropy(logits.flatten(0, 1), rows[:, j + 1:j + T + 1].flatten()))
        assert row["train_ppl"] == pytest.approx(math.exp(torch.stack(losses).mean()), rel=1e-5)

        val = corpus.val_ids.long()[None]  # (1, N): one row, shorter than evaluate.ROW_CHARS
        logits, _ = model(val[:, :-1])
        val_loss = F.cross_entropy(logits[0], val[0, 1:])
    assert row["val_ppl_lstm"] == pytest.approx(math.exp(val_loss), rel=1e-5)


def test_checkpoint_holds_everything_sampling_needs(lyrics_file, tmp_path):
    train(None, tiny_options(lyrics_file, tmp_path / "run"), **QUIET)
    raw = torch.load(tmp_path / "run" / "last.pt", weights_only=True)  # the file's own keys
    assert {"format", "version", "config", "vocab", "corpus_sha256", "model", "optimizer",
            "progress", "rng", "history"} <= set(raw)
    saved = checkpoint.load(tmp_path / "run" / "last.pt", training_state=True)
    assert saved.progress.epoch == 2 and len(saved.history) == 2
    model = saved.build_model()
    assert saved.vocab.chars == "".join(sorted(set(lyrics())))
    assert saved.config.model.hidden_size == 32
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, raw["model"][name])
    best = checkpoint.load(tmp_path / "run" / "best.pt", training_state=True)
    best_epoch = min(saved.history, key=lambda r: r["val_ppl"])["epoch"]
    assert best.progress.epoch == best_epoch


@pytest.mark.parametrize("sampling", ["adjacent", "random"])
def test_resume_gives_what_an_unbroken_run_gives(lyrics_file, tmp_path, sampling):
    options = dict(num_layers=2, dropout=0.2, sampling=sampling, epochs=4)
    straight = train(None, tiny_options(lyrics_file, tmp_path / "a", **options), **QUIET)
    train(None, tiny_options(lyrics_file, tmp_path / "b", **{**options, "epochs": 2}),
               **QUIET)
    resumed = train(None, {"out": str(tmp_path / "b"), "epochs": 4}, resume=True, **QUIET)
    assert_same_run(straight, resumed, tmp_path / "a", tmp_path / "b")


def test_resume_after_a_mid_epoch_stop(lyrics_file, tmp_path, monkeypatch):
    options = dict(num_layers=2, dropout=0.2, epochs=2)
    straight = train(None, tiny_options(lyrics_file, tmp_path / "a", **options), **QUIET)
    # A time limit that has passed after the first batch: the run stops mid-epoch.
    stopped = train(None, tiny_options(lyrics_file, tmp_path / "b", time_limit=1e-9,
                                            **options), **QUIET)
    assert stopped.stop == "time limit" and stopped.history == []
    progress = checkpoint.load(tmp_path / "b" / "last.pt", training_state=True).progress
    assert progress.epoch == 0 and progress.batch == 1
    assert (tmp_path / "b" / "best.pt").exists()  # something to sample from already
    resumed = train(None, {"out": str(tmp_path / "b")}, resume=True, **QUIET)
    assert_same_run(straight, resumed, tmp_path / "a", tmp_path / "b")


def assert_same_run(a, b, out_a, out_b):
    assert without_timings(a.history) == without_timings(b.history)
    assert without_timings(metrics(out_a)) == without_timings(metrics(out_b))
    wa = checkpoint.load(out_a / "last.pt").model
    wb = checkpoint.load(out_b / "last.pt").model
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_new_run_does_not_overwrite_an_old_one(lyrics_file, tmp_path):
    out = tmp_path / "run"
    train(None, tiny_options(lyrics_file, out, epochs=1), **QUIET)
    before = (out / "last.pt").read_bytes()
    with pytest.raises(UsageError, match="--resume"):
        train(None, tiny_options(lyrics_file, out, epochs=1), **QUIET)
    assert (out / "last.pt").read_bytes() == before
    train(None, tiny_options(lyrics_file, out, epochs=1, seed=9), overwrite=True, **QUIET)
    assert (out / "last.pt").read_bytes() != before
    assert len(metrics(out)) == 1


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(lyrics_file, tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(None, tiny_options(lyrics_file, out, epochs=1), **QUIET)
    good = (out / "last.pt").read_bytes()
    calls = {"n": 0}
    real = step.CrossEntropy

    class Poisoned:
        @staticmethod
        def apply(logits, target):
            loss = real.apply(logits, target)
            calls["n"] += 1
            return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(step, "CrossEntropy", Poisoned)
    with pytest.raises(LyricgenError, match=r"epoch 2, batch 3.*last.pt from epoch 1 is kept"):
        train(None, {"out": str(out), "epochs": 3}, resume=True, **QUIET)
    assert (out / "last.pt").read_bytes() == good


def test_a_diverging_run_stops_and_says_truly_that_nothing_was_written(lyrics_file, tmp_path):
    out = tmp_path / "run"
    result = cli("train", *cli_args(tiny_options(lyrics_file, out, lr=1e30, optimizer="sgd",
                                                 clip=0.0)))
    assert_one_line_error(result, 1, "training stopped and no checkpoint was written",
                          "set --clip")
    assert not (out / "last.pt").exists() and not (out / "best.pt").exists()


def poison_weights(trainer: loop.Trainer) -> None:
    with torch.no_grad():
        next(trainer.setup.model.parameters()).view(-1)[0] = math.inf


def test_weights_gone_non_finite_with_finite_losses_are_never_saved(lyrics_file, tmp_path,
                                                                    monkeypatch):
    """An update can make the weights non-finite after the epoch's last loss was read: the
    check before validation stops the run, and the checkpoint kept is the finite one."""
    out = tmp_path / "run"
    train(None, tiny_options(lyrics_file, out, epochs=1), **QUIET)
    before = {name: (out / name).read_bytes() for name in ("last.pt", "best.pt")}
    real = loop.Trainer.end_epoch

    def end_epoch(self, epoch):
        if epoch == 2:
            poison_weights(self)
        return real(self, epoch)

    monkeypatch.setattr(loop.Trainer, "end_epoch", end_epoch)
    with pytest.raises(LyricgenError, match=r"weights became non-finite \(inf or nan\) in "
                                            r"epoch 2; training stopped and .*last.pt from "
                                            r"epoch 1 is kept"):
        train(None, {"out": str(out), "epochs": 3}, resume=True, **QUIET)
    assert {name: (out / name).read_bytes() for name in before} == before
    assert len(metrics(out)) == 1


def test_a_stop_mid_epoch_does_not_save_non_finite_weights(lyrics_file, tmp_path, monkeypatch):
    real = TrainStep.__call__

    def step(self, *args):
        loss = real(self, *args)  # the loss of the weights before this update: finite
        with torch.no_grad():
            self.params[0].view(-1)[0] = math.nan
        return loss

    monkeypatch.setattr(TrainStep, "__call__", step)
    out = tmp_path / "run"
    with pytest.raises(LyricgenError, match=r"non-finite .* by epoch 1, batch 1; training "
                                            r"stopped and no checkpoint was written"):
        train(None, tiny_options(lyrics_file, out, time_limit=1e-9), **QUIET)
    assert not (out / "last.pt").exists()


def interrupt_at_batch(monkeypatch, n: int, sig: int = signal.SIGINT) -> None:
    """Ctrl-C as the n-th training step runs (as a user's would arrive)."""
    real, calls = TrainStep.__call__, []

    def step(self, *args):
        calls.append(1)
        if len(calls) == n:
            os.kill(os.getpid(), sig)
        return real(self, *args)

    monkeypatch.setattr(TrainStep, "__call__", step)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_is_a_normal_stop_with_the_summary(lyrics_file, tmp_path, monkeypatch, sig,
                                                    code):
    out = tmp_path / "run"
    options = tiny_options(lyrics_file, out, epochs=3)
    cfg = load_config(None, options)
    per_epoch = len(setup.training_batches(cfg, load_corpus(cfg.data, progress=False),
                                           torch.device("cpu"), 1))
    interrupt_at_batch(monkeypatch, per_epoch + 3, sig)  # as epoch 2's third batch runs
    result = cli("train", *cli_args(options))
    assert result.exit_code == code, result.output
    assert result.stderr == ""  # no error: the run stopped as asked
    name = signal.Signals(sig).name
    assert f"\ninterrupted by {name} at epoch 2, batch 3; {out / 'last.pt'} holds it " \
           "(continue with --resume)\n" in result.stdout
    assert f"training interrupted by {name}: 1 epoch, best at epoch 1" in result.stdout
    progress = checkpoint.load(out / "last.pt", training_state=True).progress
    assert (progress.epoch, progress.batch) == (1, 3)
    assert not (out / ".lock").exists()
    resumed = cli("train", "--resume", "--out", out)
    assert resumed.exit_code == 0, resumed.output
    assert [row["epoch"] for row in metrics(out)] == [1, 2, 3]


def test_the_loop_halves_the_lr_and_stops_early_as_the_schedule_says(lyrics_file, tmp_path,
                                                                      monkeypatch):
    # Validation that only gets worse: early stopping after `patience` epochs, and the
    # plateau schedule halves the lr after each `plateau_patience` epochs without improvement.
    values = iter([2.0, 2.1, 2.2, 2.3, 2.4, 2.5])
    monkeypatch.setattr(validation, "evaluate", lambda *args, **kwargs: Evaluation(next(values)))
    lines = []
    result = train(None, tiny_options(lyrics_file, tmp_path / "run", epochs=6, patience=3,
                                      lr_schedule="plateau", plateau_patience=1),
                   log=lines.append, progress_bar=False)
    assert result.stop == "early stop"
    assert [r["lr"] for r in result.history] == [0.01, 0.01, 0.005, 0.0025]
    assert [round(r["val_ppl"], 6) for r in result.history] == \
        [round(math.exp(v), 6) for v in (2.0, 2.1, 2.2, 2.3)]
    assert result.best_epoch == 1
    # each halving said right after the row of the epoch that caused it, which shows the lr
    # that epoch trained at
    rows = [i for i, line in enumerate(lines) if line.startswith("epoch ")]
    halvings = [i for i, line in enumerate(lines) if line.startswith("lr halved to")]
    assert halvings == [i + 1 for i in rows[1:]]
    assert lines[-1].startswith("early stop: no improvement for 3 epochs")



def test_best_pt_and_the_schedule_follow_the_figure_of_the_model_sample_draws_from(
        lyrics_file, tmp_path, monkeypatch):
    """A small corpus: the cache's figure is best at epoch 1 and worse after, while the model
    sample draws from (no cache) improves every epoch. best.pt is the last epoch's network,
    the plateau schedule never halves the lr and early stopping never stops."""
    plain, cache = iter([3.0, 2.9, 2.8, 2.7, 2.6]), iter([2.0, 2.1, 2.2, 2.3, 2.4])
    monkeypatch.setattr(validation, "evaluate", lambda *args, **kwargs: Evaluation(
        next(plain), cache_loss=next(cache)))
    result = train(None, tiny_options(lyrics_file, tmp_path / "run", epochs=5, patience=2,
                                      lr_schedule="plateau", plateau_patience=1,
                                      cache_eval=True), **QUIET)
    assert result.stop == "finished" and result.best_epoch == 5
    assert [r["lr"] for r in result.history] == [0.01] * 5
    best = checkpoint.load(tmp_path / "run" / "best.pt", training_state=True)
    assert best.progress.epoch == 5
    assert [round(r["val_ppl"], 6) for r in result.history] == \
        [round(math.exp(v), 6) for v in (2.0, 2.1, 2.2, 2.3, 2.4)]  # the cache's, worsening


def test_the_schedule_follows_the_network_while_best_pt_follows_the_model_sampled(
        lyrics_file, tmp_path, monkeypatch):
    """The lyrics' case: the mixture with the counts (what sample draws from) is best at epoch
    2 and flat after, while the LSTM alone still improves. best.pt is epoch 2's; the plateau
    schedule does not halve the lr and early stopping does not stop while the network learns;
    once it stops learning (epochs 6 and 7), both act."""
    plain = iter([3.0, 2.9, 2.95, 2.96, 2.97, 2.98, 2.99])
    lstm = iter([4.0, 3.9, 3.8, 3.7, 3.6, 3.65, 3.7])
    monkeypatch.setattr(validation, "evaluate", lambda *args, **kwargs: Evaluation(
        next(plain), lstm_loss=next(lstm), count_weights=[[0.5]]))
    result = train(None, tiny_options(lyrics_file, tmp_path / "run", epochs=7, patience=2,
                                      lr_schedule="plateau", plateau_patience=1), **QUIET)
    assert result.best_epoch == 2 and result.stop == "early stop"
    assert [r["lr"] for r in result.history] == [0.01] * 6 + [0.005]
    assert checkpoint.load(tmp_path / "run" / "best.pt", training_state=True).progress.epoch == 2

def test_the_first_epoch_is_the_best_so_far_whatever_its_figure():
    """A perplexity beyond float range is inf: best.pt is still written after epoch 1."""
    decision = Schedule("none").end_of_epoch(Progress(), 1, math.inf, 800.0)
    assert decision.improved


def test_the_lr_is_never_halved_below_a_thousandth_of_the_start():
    schedule, p = Schedule.of(Config().with_overrides({"lr": 0.002, "patience": 0}).train), \
        Progress()
    lr, lrs = 0.002, []
    for epoch in range(1, 65):  # the plateau schedule: every epoch without improvement
        if schedule.end_of_epoch(p, epoch, 10.0, 3.0, lr).halve_lr:
            lr /= 2
        lrs.append(lr)
    # (epoch 1 is the best so far) nine halvings after epochs 2 to 10, then it stays
    assert lrs[9:] == [0.002 / 2**9] * 55
    assert min(lrs) >= 0.002 / 1000


def test_the_loop_stops_halving_at_the_floor_and_says_so(lyrics_file, tmp_path, monkeypatch):
    monkeypatch.setattr(validation, "evaluate", lambda *args, **kwargs: Evaluation(2.0))
    lines = []
    result = train(None, tiny_options(lyrics_file, tmp_path / "run", epochs=13, lr=0.01,
                                      lr_schedule="plateau", plateau_patience=1, patience=0),
                   log=lines.append, progress_bar=False)
    # Epoch 1 is the best so far; each later one is a plateau: halved after epochs 2 to 10.
    assert [r["lr"] for r in result.history] == [0.01 / 2**min(max(e - 1, 0), 9)
                                                 for e in range(13)]
    halvings = [line for line in lines if line.startswith("lr halved to")]
    assert len(halvings) == 9
    assert halvings[-1] == "lr halved to 1.95e-05 (the last time: it is not halved below " \
                           "1/1000 of the starting lr)"


@pytest.mark.parametrize("kind, figures, halved, stopped", [
    # (validation perplexity, training loss) per epoch
    ("halve", [(9, 3.0), (8, 2.5), (7, 2.6), (6, 2.4)], [False, False, True, False], None),
    ("plateau", [(9, 3.0), (9.5, 2.9), (9.1, 2.8), (8, 2.7), (8, 2.6)],
     [False, False, True, False, False], None),
    ("none", [(9, 3.0), (9.5, 3.1), (9.6, 3.2), (9.7, 3.3)], [False] * 4, 3),
])
def test_schedule_decisions(kind, figures, halved, stopped):
    schedule, p = Schedule(kind, plateau_patience=2, patience=3), Progress()
    decisions = []
    for epoch, (monitored, train_loss) in enumerate(figures, start=1):
        decisions.append(schedule.end_of_epoch(p, epoch, monitored, train_loss))
        p.start_next_epoch(epoch, train_loss)
    assert [d.halve_lr for d in decisions] == halved
    assert [d.improved for d in decisions] == [m < min([f[0] for f in figures[:i]], default=1e9)
                                               for i, (m, _) in enumerate(figures)]
    first_stop = next((i + 1 for i, d in enumerate(decisions) if d.stop), None)
    assert first_stop == (stopped + 1 if stopped else None)


def test_command_line_overrides_config_file(lyrics_file, tmp_path):
    preset = tmp_path / "preset.toml"
    preset.write_text('[model]\nhidden_size = 16\nembedding_size = 8\nnum_layers = 1\n'
                      '[train]\nlr = 0.5\nepochs = 1\nbatch_size = 4\nnum_steps = 8\n'
                      'optimizer = "sgd"\n')
    out = tmp_path / "run"
    result = cli("train", "--config", preset, "--data", lyrics_file, "--hidden-size", 24,
                 "--out", out)
    assert result.exit_code == 0, result.output
    cfg = checkpoint.load(out / "last.pt").config
    assert cfg.model.hidden_size == 24  # the option won
    assert cfg.model.embedding_size == 8 and cfg.train.lr == 0.5  # the file's
    assert cfg.train.optimizer == "sgd" and cfg.model.backend == ModelConfig.backend
    assert "epoch    1/1" in result.stdout


def test_presets_parse_and_default_preset_equals_the_defaults():
    from pathlib import Path

    configs = Path(__file__).parent.parent / "configs"
    assert load_config(configs / "default.toml", {}) == Config().validate()
    book = load_config(configs / "d2l-scratch.toml", {})
    assert (book.data.max_chars, book.data.newlines, book.model.input, book.model.hidden_size,
            book.train.num_steps, book.train.batch_size, book.train.sampling, book.train.clip,
            book.train.optimizer, book.train.lr, book.train.epochs) == \
        (10000, "space", "onehot", 256, 35, 32, "adjacent", 0.01, "sgd", 100.0, 160)
    for book_preset in (book, load_config(configs / "d2l-builtin.toml", {})):
        t = book_preset.train  # the quality preset's regularisers and schedules stay out
        assert (t.weight_decay, t.lr_schedule, t.patience, t.cache_eval) == (0.0, "none", 0, False)
        assert book_preset.model.dropout == 0.0 and book_preset.model.init == \
            ("normal" if book_preset is book else "uniform")
    builtin = load_config(configs / "d2l-builtin.toml", {})
    assert (builtin.model.backend, builtin.train.optimizer, builtin.train.lr) == \
        ("builtin", "adam", 0.01)


def test_preview_prints_samples_of_each_prefix(lyrics_file, tmp_path):
    lines = []
    train(None, tiny_options(lyrics_file, tmp_path / "run", epochs=2, preview_every=2,
                             prefix=["分开", "月光"]), log=lines.append, progress_bar=False)
    previews = [line.strip() for line in lines if line.startswith("  ")]
    assert len(previews) == 2
    assert previews[0].startswith("分开") and previews[1].startswith("月光")
    assert all(len(p) > 10 for p in previews)
    # what `sample --greedy` draws from the last epoch's model, its counts mixed in
    result = cli("sample", "--checkpoint", tmp_path / "run" / "last.pt", "--prefix", "分开",
                 "--greedy", "--length", 50, "--device", "cpu", "--candidates", 1)
    assert previews[0] == result.stdout.strip().replace("\n", " / ")


# --- memory -------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", [
    dict(input="embedding", tie_weights=False, num_layers=2),
    dict(input="embedding", tie_weights=True, embedding_size=16, hidden_size=32),  # projection
    dict(input="embedding", tie_weights=True, embedding_size=32, hidden_size=32),
    dict(input="onehot", num_layers=3),
], ids=["untied", "tied with a projection", "tied", "one-hot"])
def test_the_memory_estimate_counts_the_parameters_as_the_model_has_them(model):
    cfg = Config().with_overrides({**TINY, **model})
    real = sum(p.numel() for p in CharLM(50, cfg.model).parameters())
    assert cfg.model.parameter_count(50) == real
    m = cfg.model
    width = m.embedding_size if m.input == "embedding" else 50
    activations = 8 * 16 * (m.num_layers * 10 * m.hidden_size + width + 3 * 50)  # B T (...)
    assert setup.memory_estimate(cfg, 50) == 4 * (4 * real + activations)  # Adam: 2 moments


def test_settings_beyond_the_memory_are_refused_before_anything_is_allocated(
        lyrics_file, tmp_path, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("the model was built")

    monkeypatch.setattr(setup, "CharLM", no_model)
    monkeypatch.setattr(memory, "available_memory", lambda device: 1_000_000)
    out = tmp_path / "run"
    result = cli("train", *cli_args(tiny_options(lyrics_file, out, hidden_size=2048)))
    assert_one_line_error(result, 2, "--hidden-size 2048 needs about", "MB of memory",
                          "this machine has 1.0 MB free; lower --hidden-size")
    assert not out.exists()


# --- what a run shows ---------------------------------------------------------------------------

def test_the_first_line_says_what_starts_before_the_slow_parts(lyrics_file, tmp_path,
                                                               monkeypatch):
    lines, before_corpus = [], []
    real = train_command.load_corpus

    def load_corpus_(*args, **kwargs):
        before_corpus.append(list(lines))
        return real(*args, **kwargs)

    monkeypatch.setattr(train_command, "load_corpus", load_corpus_)
    out = tmp_path / "run"
    train(None, tiny_options(lyrics_file, out, epochs=1), log=lines.append, progress_bar=False)
    model = f"1 layer of 32 units, 16-wide embedding; corpus {lyrics_file}; on cpu"
    assert before_corpus[0] == [f"training a scratch LSTM into {out}: {model}"]
    lines.clear()
    train(None, {"out": str(out), "epochs": 2}, resume=True, log=lines.append,
          progress_bar=False)
    assert before_corpus[1] == [f"resuming {out / 'last.pt'} after epoch 1 (scratch LSTM): "
                                f"{model}"]


class RecordingBar:
    """tqdm's part the loop uses, recording what the bar shows, in order with the log."""

    def __init__(self, events: list, desc: str = "", disable: bool = False, **kwargs):
        self.events = events
        self.events.append(f"bar: {desc}")

    def update(self, n: int) -> None:
        pass

    def set_postfix(self, **kwargs) -> None:
        pass

    def set_description(self, desc: str) -> None:
        self.events.append(f"bar: {desc}")

    def close(self) -> None:
        self.events.append("bar closed")


def test_the_bar_shows_validating_and_saving(lyrics_file, tmp_path, monkeypatch):
    events = []
    monkeypatch.setattr(loop, "tqdm", lambda *args, **kwargs: RecordingBar(events, **kwargs))
    train(None, tiny_options(lyrics_file, tmp_path / "run", epochs=2),
          log=lambda line: events.append(line[:len("epoch    1/2")]), progress_bar=True)
    assert events[1:] == ["bar: epoch 1/2", "bar: epoch 1/2 validating", "bar: epoch 1/2 saving",
                          "bar closed", "epoch    1/2",
                          "bar: epoch 2/2", "bar: epoch 2/2 validating", "bar: epoch 2/2 saving",
                          "bar closed", "epoch    2/2"]


# --- help ---------------------------------------------------------------------------------------

def help_text(command: str) -> str:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    return "".join(result.stdout.split())  # without spaces, so that wrapping does not matter


@pytest.mark.parametrize("command", ["train", "compare", "sample"])
def test_help_shows_choices_and_one_style_of_default(command):
    text = help_text(command)
    assert "<bool>" not in text and "<list[str]>" not in text  # flags take no value
    assert "(default:" not in text  # typer's style, "[default: x]", only
    if command != "sample":
        for shown in ("--device <auto|cpu|cuda[:N]>",
                      "--data <path|name>", "[default: jaychou]", "[default: tie-weights]",
                      "--prefix <text>", "[default: 分开, 不分开]", "--out <folder>",
                      "a projection bridges the two"):  # differing sizes are fine
            assert shown.replace(" ", "") in text, shown
        # compare trains both backends
        assert ("--backend<scratch|builtin>" in text) == (command == "train")


# --- starting from another run's weights (--init-from) -------------------------------------------

def test_init_from_carries_weights_over_by_character_and_trains_the_new_ones(lyrics_file, tmp_path):
    train(None, tiny_options(lyrics_file, tmp_path / "source", epochs=1), **QUIET)
    source = checkpoint.load(tmp_path / "source" / "best.pt")
    new_text = tmp_path / "new.txt"
    new_text.write_text("新的海洋 新的字\n" * 30 + lyrics(), encoding="utf-8")
    runs = {}
    for name, lr in (("kept", 1e-30), ("trained", 0.01)):  # 1e-30: the start, unchanged
        lines = []
        options = {**tiny_options(new_text, tmp_path / name, epochs=1, lr=lr, backend="builtin"),
                   "init_from": str(tmp_path / "source" / "best.pt")}
        train(None, options, log=lines.append, progress_bar=False)
        runs[name] = checkpoint.load(tmp_path / name / "last.pt")
    kept, vocab = runs["kept"], runs["kept"].vocab
    shared = [c for c in vocab.chars if c in source.vocab.index]
    new = [c for c in vocab.chars if c not in source.vocab.index]
    assert sorted(new) == sorted(set("新的海洋字 ") - set(lyrics())) and new
    assert f"{len(shared)} characters carried over, {len(new)} new" in lines[1]
    for name in ("embedding.weight", "head.weight", "head.bias"):
        rows = lambda ckpt, chars: ckpt.model[name][[ckpt.vocab.index[c] for c in chars]]  # noqa
        assert torch.equal(rows(kept, shared), rows(source, shared)), name
        torch.manual_seed(kept.config.train.seed)  # the new rows: as a new run draws them
        fresh = CharLM(len(vocab), kept.config.model).state_dict()[name]
        assert torch.equal(rows(kept, new), fresh[[vocab.index[c] for c in new]]), name
        assert not torch.equal(rows(runs["trained"], new), rows(kept, new)), name  # trained
    for name, weight in source.model.items():
        if name.startswith("rnn."):  # scratch's LSTM, now nn.LSTM's, unchanged
            assert torch.equal(kept.model[name], weight), name


def test_init_from_a_model_of_other_shapes_is_one_line_and_writes_nothing(trained, tmp_path):
    (tmp_path / "x.txt").write_text(lyrics(), encoding="utf-8")
    result = cli("train", "--data", tmp_path / "x.txt", "--out", tmp_path / "run",
                 "--init-from", trained / "best.pt", "--hidden-size", 64, "--batch-size", 8,
                 "--num-steps", 16)
    assert_one_line_error(result, 2, "--init-from", "rnn.weight_ih_l0 is 128x16",
                          "this run's is 256x16",
                          "this run gives --hidden-size 64 (it was made with --hidden-size 32)")
    assert not (tmp_path / "run").exists()


def test_init_from_a_model_without_a_weight_of_this_run_names_the_setting(trained, tmp_path):
    """A hidden size other than the embedding's adds a projection the source has none of."""
    (tmp_path / "x.txt").write_text(lyrics(), encoding="utf-8")
    result = cli("train", "--data", tmp_path / "x.txt", "--out", tmp_path / "run",
                 "--init-from", trained / "best.pt", "--tie-weights", "--batch-size", 8,
                 "--num-steps", 16)
    assert_one_line_error(result, 2, "--init-from", "its model has no proj.weight",
                          "this run gives --tie-weights (it was made with --no-tie-weights)")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("extra, notes", [
    ({"val_fraction": 1e-9}, ["--val-fraction 1e-09 holds out no character",
                              "the counts (--ngram-order 5)"]),
    ({"val_fraction": 0.0}, ["the counts (--ngram-order 5) learn their weights on held-out"]),
    ({"val_fraction": 0.0, "ngram_order": 0}, []),
    ({"val_fraction": 0.1}, []),
])
def test_validation_or_counts_dropped_by_the_settings_is_said(lyrics_file, tmp_path, extra,
                                                              notes):
    lines: list[str] = []
    train(None, tiny_options(lyrics_file, tmp_path / "run", epochs=1, **extra),
          log=lines.append, progress_bar=False)
    said = [line for line in lines if line.startswith("note:")]
    assert len(said) == len(notes) and all(any(n in line for line in said) for n in notes), said


def test_help_says_that_the_regularisation_is_sized_unless_set():
    text = " ".join(cli("train", "--help").stdout.split())
    for option in ("--dropout", "--embedding-dropout", "--weight-decay"):
        after = text[text.index(option + " "):]
        assert "sized to the corpus and the time given" in after[:300], option
    assert "[default: 0.65]" not in text and "[default: 0.3]" not in text


def test_a_one_epoch_summary_says_1_epoch(lyrics_file, tmp_path):
    result = cli("train", *cli_args(tiny_options(lyrics_file, tmp_path / "run", epochs=1)))
    assert result.exit_code == 0, result.output
    title = " ".join(result.stdout.split())
    assert "training finished: 1 epoch, best at epoch 1" in title, result.stdout



def test_the_summary_fits_an_80_column_pipe_without_cutting_a_figure(tmp_path):
    """Every column of the widest summary (the cache, the counts), with figures as wide as runs
    make them (a 5-digit perplexity, 6-digit tokens/s, an lr after many halvings), in 80
    columns: no line longer, nothing cut to an ellipsis, every figure there in full."""
    row = {"epoch": 12, "train_ppl": 12345.67, "val_ppl": 9876.54, "val_ppl_plain": 10234.5,
           "val_ppl_lstm": 11111.11, "seconds": 1234.5, "tokens_per_s": 123456.0,
           "lr": 0.000125}
    rows = [dict(row, epoch=e, lr=row["lr"] / 2 ** (e // 7)) for e in range(1, 15)]
    out = io.StringIO()
    tables.print_training_summary(loop.TrainResult(rows, "time limit", tmp_path, 12),
                                  Console(file=out, width=80))
    text = out.getvalue()
    assert max(map(len, text.splitlines())) <= 80 and "…" not in text
    assert text.splitlines()[0].strip() == "training time limit: 14 epochs, best at epoch 12"
    for figure in ("12345.67", "9876.54", "10234.50", "11111.11", "1234.5", "123,456",
                   "6.25e-05", f"{0.000125 / 4:.3g}"):
        assert figure in text, figure

@pytest.mark.parametrize("bar", [False, True])
def test_without_a_progress_bar_a_line_says_how_far_each_epoch_is(lyrics_file, tmp_path,
                                                                  monkeypatch, bar):
    """Piped (no bar), a line every HEARTBEAT_S seconds (here every sync of the losses, every
    16 batches of the 61 an epoch has), the epoch's end apart, which has its row: the epoch,
    its batches done of all, the perplexity so far; with a bar, none."""
    monkeypatch.setattr(reporting, "HEARTBEAT_S", 0.0)
    lines = []
    train(None, tiny_options(lyrics_file, tmp_path / "run", epochs=2, batch_size=2),
          log=lines.append, progress_bar=bar)
    beats = [line for line in lines if ": batch " in line]
    if bar:
        assert beats == []
    else:
        assert [line.split(",")[0] for line in beats] == [
            f"epoch {e}/2: batch {b}/61" for e in (1, 2) for b in (16, 32, 48)]
        assert all("train ppl" in line and "tok/s" in line for line in beats)
