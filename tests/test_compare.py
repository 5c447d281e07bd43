"""`lyricgen compare`: both backends learn the same thing from the same start; files written."""

from __future__ import annotations

import builtins
import csv
import json

import os
import signal
import subprocess
import sys

from conftest import TINY, assert_one_line_error, cli, cli_args
from lyricgen import memory
from lyricgen.commands import compare
from lyricgen.presets import load_config
from lyricgen.data.corpus import load_corpus
from lyricgen.models.charlm import CharLM


def compare_cli(data, out, *extra):
    return cli("compare", "--data", data, "--out", out, *cli_args(TINY), "--epochs", 3, *extra)


def test_backends_agree_and_the_report_files_are_written(lyrics_file, tmp_path):
    out = tmp_path / "cmp"
    result = compare_cli(lyrics_file, out, "--num-layers", 2)
    assert result.exit_code == 0, result.output
    assert "as fast as" in result.stdout

    report = json.loads((out / "compare.json").read_text())
    scratch, builtin = (report["backends"][b]["epochs"] for b in ("scratch", "builtin"))
    assert [r["epoch"] for r in scratch] == [r["epoch"] for r in builtin] == [1, 2, 3]
    for a, b in zip(scratch, builtin):
        assert abs(a["train_ppl"] - b["train_ppl"]) <= 1e-4 * b["train_ppl"]
        assert abs(a["val_ppl"] - b["val_ppl"]) <= 1e-4 * b["val_ppl"]
        assert set(a) == {"epoch", "train_ppl", "val_ppl", "seconds", "tokens_per_s"}
    assert report["backends"]["scratch"]["parameters"] == \
        report["backends"]["builtin"]["parameters"]
    agreement = report["agreement"]
    assert agreement["logits_max_abs_diff_float64"] < 1e-12
    assert agreement["grad_max_abs_diff_float64"] < 1e-12
    assert agreement["logits_max_abs_diff_float32"] < 1e-5
    summary = report["summary"]
    speeds = {b: report["backends"][b]["tokens_per_s"] for b in ("scratch", "builtin")}
    assert summary["speedup_scratch_over_builtin"] == speeds["scratch"] / speeds["builtin"]
    assert summary["faster"] == max(speeds, key=speeds.get)

    with (out / "compare.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["backend"], int(r["epoch"])) for r in rows] == \
        [(b, e) for b in ("scratch", "builtin") for e in (1, 2, 3)]
    assert float(rows[0]["train_ppl"]) == scratch[0]["train_ppl"]
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {out / 'compare.json'}, {out / 'compare.csv'}, {out / 'compare.png'}" \
        in result.stdout
    for backend in ("scratch", "builtin"):  # each backend's run is a normal, sampleable run
        assert (out / backend / "best.pt").exists()
        assert len((out / backend / "metrics.jsonl").read_text().splitlines()) == 3


def test_agreement_check_runs_in_training_mode_with_every_dropout_off(lyrics_file, monkeypatch):
    """Training mode because cuDNN's LSTM has no backward in eval mode; the book's normal init
    and dropout in the config must not make the backends' starting points differ."""
    modes = []
    forward = CharLM.forward

    def recording_forward(self, *args):
        modes.append(self.training)
        return forward(self, *args)

    monkeypatch.setattr(CharLM, "forward", recording_forward)
    cfg = load_config(None, {**TINY, "data": str(lyrics_file), "num_layers": 2, "dropout": 0.5,
                             "embedding_dropout": 0.5, "init": "normal"})
    result = compare.agreement(cfg, load_corpus(cfg.data, progress=False))
    assert modes == [True] * 4  # two backends, float32 and float64
    assert result["logits_max_abs_diff_float64"] < 1e-12
    assert result["grad_max_abs_diff_float64"] < 1e-12
    assert result["logits_max_abs_diff_float32"] < 1e-5


def test_without_matplotlib_json_and_csv_are_still_written(lyrics_file, tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    out = tmp_path / "cmp"
    result = compare_cli(lyrics_file, out)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("matplotlib is not installed") == 1
    assert (out / "compare.json").exists() and (out / "compare.csv").exists()
    assert not (out / "compare.png").exists()


def test_time_limit_gives_a_quick_speed_comparison(lyrics_file, tmp_path):
    out = tmp_path / "cmp"
    result = compare_cli(lyrics_file, out, "--time-limit", "1e-9")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "compare.json").read_text())
    assert report["config"]["train"]["time_limit"] == 1e-9  # as given (each backend has half)
    for backend in compare.BACKENDS:
        assert report["backends"][backend]["epochs"] == []
        assert report["backends"][backend]["tokens_per_s"] > 0


def test_an_earlier_comparison_is_kept_unless_overwrite(lyrics_file, tmp_path):
    out = tmp_path / "cmp"
    assert compare_cli(lyrics_file, out, "--epochs", 1).exit_code == 0
    before = (out / "scratch" / "last.pt").read_bytes()
    again = compare_cli(lyrics_file, out, "--epochs", 1)
    assert again.exit_code == 2 and "--overwrite" in again.stderr
    assert (out / "scratch" / "last.pt").read_bytes() == before
    assert compare_cli(lyrics_file, out, "--epochs", 1, "--overwrite").exit_code == 0


def test_overwrite_removes_the_temporary_files_of_a_killed_write(lyrics_file, tmp_path):
    out = tmp_path / "cmp"
    assert compare_cli(lyrics_file, out, "--epochs", 1).exit_code == 0
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = out / "scratch" / f".last.pt.{dead.pid}.tmp"
    stale.write_bytes(b"PK\x03\x04 half a checkpoint")
    assert compare_cli(lyrics_file, out, "--epochs", 1, "--overwrite").exit_code == 0
    assert not stale.exists()


def test_a_comparison_too_big_for_the_memory_is_refused_before_any_model(lyrics_file,
                                                                         tmp_path,
                                                                         monkeypatch):
    from lyricgen.training import setup

    def no_model(*args, **kwargs):
        raise AssertionError("a model was built")

    monkeypatch.setattr(compare, "CharLM", no_model)  # the agreement check's models
    monkeypatch.setattr(memory, "available_memory", lambda device: 1_000_000)
    result = compare_cli(lyrics_file, tmp_path / "cmp", "--hidden-size", 2048)
    assert_one_line_error(result, 2, "--hidden-size 2048 needs about", "lower --hidden-size")
    assert not (tmp_path / "cmp").exists()


def test_ctrl_c_stops_the_comparison_saying_how_to_continue_its_run(lyrics_file, tmp_path,
                                                                     monkeypatch):
    from lyricgen.training.step import TrainStep

    real, calls = TrainStep.__call__, []

    def step(self, *args):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, *args)

    monkeypatch.setattr(TrainStep, "__call__", step)
    out = tmp_path / "cmp"
    result = compare_cli(lyrics_file, out)
    assert_one_line_error(result, 130, "comparison was interrupted by SIGINT during the scratch "
                          f"run; `lyricgen train --resume --out {out / 'scratch'}` continues")
    assert (out / "scratch" / "last.pt").exists() and not (out / "builtin").exists()
    assert not (out / ".lock").exists() and not (out / "scratch" / ".lock").exists()


def test_compare_offers_no_backend_option_as_it_trains_both():
    assert "--backend" not in cli("compare", "--help").stdout
    assert_one_line_error(cli("compare", "--backend", "scratch"), 2, "--backend")
