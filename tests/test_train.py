"""Training: perplexity, metrics file, checkpoints, resume equality, schedules, config layering."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from conftest import lyrics, tiny_options
from lyricgen import runs
from lyricgen.checkpoint import load_checkpoint, model_from_checkpoint
from lyricgen.cli import app
from lyricgen.config import Config, ModelConfig
from lyricgen.corpus import load_corpus
from lyricgen.evaluate import Evaluation
from lyricgen.models.lm import CharLM

QUIET = dict(log=lambda m: None, progress_bar=False)


def metrics(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_perplexity_falls_and_metrics_are_written(lyrics_file, tmp_path):
    result = runs.train(None, tiny_options(lyrics_file, tmp_path / "run", epochs=4), **QUIET)
    rows = metrics(tmp_path / "run")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows == result.history
    for row in rows:
        assert set(row) >= {"epoch", "train_ppl", "val_ppl", "seconds", "tokens_per_s", "lr"}
        assert row["seconds"] > 0 and row["tokens_per_s"] > 0 and row["lr"] == 0.01
    assert rows[-1]["train_ppl"] < rows[0]["train_ppl"] / 2
    assert rows[-1]["val_ppl"] < rows[0]["val_ppl"]


def test_perplexities_match_an_independent_computation(lyrics_file, tmp_path):
    """With a negligible learning rate the weights stay the initial ones, so the epoch's
    training perplexity is exp(mean CE) of the seed's model over the book's consecutive
    windows, and validation is the held-out text run in one piece (the state carried)."""
    B, T = 4, 10
    options = tiny_options(lyrics_file, tmp_path / "run", epochs=1, lr=1e-30, batch_size=B,
                           num_steps=T, optimizer="sgd", clip=0.0)
    row = runs.train(None, options, **QUIET).history[0]

    cfg = Config().with_overrides(options)
    corpus = load_corpus(cfg.data)
    torch.manual_seed(cfg.train.seed)
    model = CharLM(len(corpus.vocab), cfg.model).eval()
    train = corpus.train_ids.long()
    row_len = len(train) // B
    rows = train[: B * row_len].view(B, row_len)
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
    assert row["val_ppl"] == pytest.approx(math.exp(val_loss), rel=1e-5)


def test_checkpoint_holds_everything_sampling_needs(lyrics_file, tmp_path):
    runs.train(None, tiny_options(lyrics_file, tmp_path / "run"), **QUIET)
    payload = load_checkpoint(tmp_path / "run" / "last.pt")
    assert {"format", "version", "config", "vocab", "model", "optimizer", "progress", "rng",
            "history"} <= set(payload)
    assert payload["progress"]["epoch"] == 2 and len(payload["history"]) == 2
    model, vocab, cfg = model_from_checkpoint(payload, "last.pt")
    assert vocab.chars == "".join(sorted(set(lyrics())))
    assert cfg.model.hidden_size == 32
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, payload["model"][name])
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    best_epoch = min(payload["history"], key=lambda r: r["val_ppl"])["epoch"]
    assert best["progress"]["epoch"] == best_epoch


@pytest.mark.parametrize("sampling", ["adjacent", "random"])
def test_resume_gives_what_an_unbroken_run_gives(lyrics_file, tmp_path, sampling):
    options = dict(num_layers=2, dropout=0.2, sampling=sampling, epochs=4)
    straight = runs.train(None, tiny_options(lyrics_file, tmp_path / "a", **options), **QUIET)
    runs.train(None, tiny_options(lyrics_file, tmp_path / "b", **{**options, "epochs": 2}),
               **QUIET)
    resumed = runs.train(None, {"out": str(tmp_path / "b"), "epochs": 4}, resume=True, **QUIET)
    assert_same_run(straight, resumed, tmp_path / "a", tmp_path / "b")


def test_resume_after_a_mid_epoch_stop(lyrics_file, tmp_path, monkeypatch):
    options = dict(num_layers=2, dropout=0.2, epochs=2)
    straight = runs.train(None, tiny_options(lyrics_file, tmp_path / "a", **options), **QUIET)
    # A time limit that has passed after the first batch: the run stops mid-epoch.
    stopped = runs.train(None, tiny_options(lyrics_file, tmp_path / "b", time_limit=1e-9,
                                            **options), **QUIET)
    assert stopped.stop == "time limit" and stopped.history == []
    progress = load_checkpoint(tmp_path / "b" / "last.pt")["progress"]
    assert progress["epoch"] == 0 and progress["batch"] == 1
    assert (tmp_path / "b" / "best.pt").exists()  # something to sample from already
    resumed = runs.train(None, {"out": str(tmp_path / "b")}, resume=True, **QUIET)
    assert_same_run(straight, resumed, tmp_path / "a", tmp_path / "b")


def assert_same_run(a, b, out_a, out_b):
    drop = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "tokens_per_s")}
                         for r in rows]
    assert drop(a.history) == drop(b.history)
    assert drop(metrics(out_a)) == drop(metrics(out_b))
    wa = load_checkpoint(out_a / "last.pt")["model"]
    wb = load_checkpoint(out_b / "last.pt")["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_new_run_does_not_overwrite_an_old_one(lyrics_file, tmp_path):
    out = tmp_path / "run"
    runs.train(None, tiny_options(lyrics_file, out, epochs=1), **QUIET)
    before = (out / "last.pt").read_bytes()
    with pytest.raises(runs.UsageError, match="--resume"):
        runs.train(None, tiny_options(lyrics_file, out, epochs=1), **QUIET)
    assert (out / "last.pt").read_bytes() == before
    runs.train(None, tiny_options(lyrics_file, out, epochs=1, seed=9), overwrite=True, **QUIET)
    assert (out / "last.pt").read_bytes() != before
    assert len(metrics(out)) == 1


def test_resume_refuses_changed_settings(lyrics_file, tmp_path):
    out = tmp_path / "run"
    runs.train(None, tiny_options(lyrics_file, out, epochs=1), **QUIET)
    with pytest.raises(runs.UsageError, match="--hidden-size"):
        runs.train(None, {"out": str(out), "hidden_size": 64}, resume=True, **QUIET)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(lyrics_file, tmp_path, monkeypatch):
    out = tmp_path / "run"
    runs.train(None, tiny_options(lyrics_file, out, epochs=1), **QUIET)
    good = (out / "last.pt").read_bytes()
    calls = {"n": 0}
    real = F.cross_entropy

    def poisoned(logits, target, *args, **kwargs):
        loss = real(logits, target, *args, **kwargs)
        if logits.requires_grad:
            calls["n"] += 1
            if calls["n"] == 3:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(F, "cross_entropy", poisoned)
    with pytest.raises(runs.LyricgenError, match=r"epoch 2, batch 3"):
        runs.train(None, {"out": str(out), "epochs": 3}, resume=True, **QUIET)
    assert (out / "last.pt").read_bytes() == good


def test_halve_schedule_and_early_stopping(lyrics_file, tmp_path, monkeypatch):
    # Validation that only gets worse: early stopping after `patience` epochs, and the
    # plateau schedule halves the lr after each `plateau_patience` epochs without improvement.
    values = iter([2.0, 2.1, 2.2, 2.3, 2.4, 2.5])
    monkeypatch.setattr(runs.Trainer, "_validation", lambda self: Evaluation(next(values)))
    result = runs.train(None, tiny_options(lyrics_file, tmp_path / "run", epochs=6, patience=3,
                                           lr_schedule="plateau", plateau_patience=1), **QUIET)
    assert result.stop == "early stop"
    assert [r["lr"] for r in result.history] == [0.01, 0.01, 0.005, 0.0025]
    assert [round(r["val_ppl"], 6) for r in result.history] == \
        [round(math.exp(v), 6) for v in (2.0, 2.1, 2.2, 2.3)]
    assert result.best_epoch == 1


def test_halve_on_increase_rule(lyrics_file, tmp_path):
    cfg = Config().with_overrides(tiny_options(lyrics_file, tmp_path, lr_schedule="halve"))
    trainer = runs.Trainer(cfg, load_corpus(cfg.data), tmp_path, **QUIET)
    lr = lambda: trainer.optimizer.param_groups[0]["lr"]
    trainer._schedule(3.0)  # no previous epoch: nothing to compare
    trainer.progress.prev_train_loss = 3.0
    trainer._schedule(2.5)
    assert lr() == 0.01
    trainer.progress.prev_train_loss = 2.5
    trainer._schedule(2.6)
    assert lr() == 0.005


def test_command_line_overrides_config_file(lyrics_file, tmp_path):
    preset = tmp_path / "preset.toml"
    preset.write_text('[model]\nhidden_size = 16\nembedding_size = 8\nnum_layers = 1\n'
                      '[train]\nlr = 0.5\nepochs = 1\nbatch_size = 4\nnum_steps = 8\n'
                      'optimizer = "sgd"\n')
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--config", str(preset), "--data", str(lyrics_file),
                                      "--hidden-size", "24", "--out", str(out)])
    assert result.exit_code == 0, result.output
    cfg = load_checkpoint(out / "last.pt")["config"]
    assert cfg["model"]["hidden_size"] == 24  # the option won
    assert cfg["model"]["embedding_size"] == 8 and cfg["train"]["lr"] == 0.5  # the file's
    assert cfg["train"]["optimizer"] == "sgd" and cfg["model"]["backend"] == ModelConfig.backend
    assert "epoch    1/1" in result.stdout


@pytest.mark.parametrize("text, expected", [
    ("[model]\nhiden_size = 16\n", "unknown key 'hiden_size'"),
    ("[model]\nhidden_size = 'big'\n", "hidden_size must be an integer"),
    ("[train]\nlr = true\n", "lr must be a number"),
    ("[train]\nsampling = 'sideways'\n", "sampling must be one of"),
    ("[training]\nlr = 1\n", "unknown table [training]"),
    ("[model\nhidden_size = 16\n", "not valid TOML"),
])
def test_bad_config_files_are_refused_naming_the_key(tmp_path, lyrics_file, text, expected):
    preset = tmp_path / "bad.toml"
    preset.write_text(text)
    result = CliRunner().invoke(app, ["train", "--config", str(preset), "--data", str(lyrics_file),
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert expected in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_missing_config_file(tmp_path):
    result = CliRunner().invoke(app, ["train", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2 and "config file not found" in result.stderr


def test_presets_parse_and_default_preset_equals_the_defaults():
    from pathlib import Path

    configs = Path(__file__).parent.parent / "configs"
    assert runs.load_config(configs / "default.toml", {}) == Config().validate()
    book = runs.load_config(configs / "d2l-scratch.toml", {})
    assert (book.data.max_chars, book.data.newlines, book.model.input, book.model.hidden_size,
            book.train.num_steps, book.train.batch_size, book.train.sampling, book.train.clip,
            book.train.optimizer, book.train.lr, book.train.epochs) == \
        (10000, "space", "onehot", 256, 35, 32, "adjacent", 0.01, "sgd", 100.0, 160)
    for book_preset in (book, runs.load_config(configs / "d2l-builtin.toml", {})):
        t = book_preset.train  # the quality preset's regularisers and schedules stay out
        assert (t.weight_decay, t.lr_schedule, t.patience, t.cache_eval) == (0.0, "none", 0, False)
        assert book_preset.model.dropout == 0.0 and book_preset.model.init == \
            ("normal" if book_preset is book else "uniform")
    builtin = runs.load_config(configs / "d2l-builtin.toml", {})
    assert (builtin.model.backend, builtin.train.optimizer, builtin.train.lr) == \
        ("builtin", "adam", 0.01)


def test_preview_prints_samples_of_each_prefix(lyrics_file, tmp_path):
    lines = []
    runs.train(None, tiny_options(lyrics_file, tmp_path / "run", epochs=2, preview_every=2,
                                  prefix=["分开", "月光"]), log=lines.append, progress_bar=False)
    previews = [line.strip() for line in lines if line.startswith("  ")]
    assert len(previews) == 2
    assert previews[0].startswith("分开") and previews[1].startswith("月光")
    assert all(len(p) > 10 for p in previews)
