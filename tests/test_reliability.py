"""Reliability: every user error is one `error:` line and an exit code (2 usage, 1 runtime), no
traceback unless --debug, and never a damaged checkpoint; damaged, foreign, newer and malicious
checkpoints are refused; SIGINT / SIGTERM / kill -9 / failing writes leave a loadable last.pt
that --resume continues."""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

import lyricgen.checkpoint
from conftest import TINY, assert_one_line_error, cli, cli_args, lyrics, tiny_options
from lyricgen import checkpoint

OUTPUTS = {"last.pt", "best.pt", "metrics.jsonl"}
LOCK = ".lock"  # a run's lock file, removed as the run ends
TEMPORARY = re.compile(r"^\.(last|best)\.pt\.\d+\.tmp$")  # checkpoint.py's temporary files
TINY_ARGS = cli_args(TINY)


# --- helpers -------------------------------------------------------------------------------------

def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file in `folder` by name, with its bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def saved_epoch(out: Path) -> int:
    return checkpoint.load(out / "last.pt", training_state=True).progress.epoch


def metric_epochs(out: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    """A private copy of the finished tiny run (last.pt, best.pt, metrics.jsonl)."""
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    assert set(os.listdir(copy)) == OUTPUTS
    return copy


@pytest.fixture(autouse=True)
def no_cuda(monkeypatch):
    """Every test sees a machine without CUDA, so `--device cuda` fails on GPU machines too."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


# --- bad input to `lyricgen train` ---------------------------------------------------------------

def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


# Files each case writes under tmp_path ("{tmp}" in its arguments), its arguments (they come
# after a good tiny run's, so they win), the exit code, and what the error line must say.
TRAIN_CASES = [
    # --init-from a checkpoint that is not there, or not lyricgen's: exit 1
    pytest.param({}, ["--init-from", "{tmp}/none.pt"], 1, ["--init-from", "none.pt", "not found"],
                 id="init from a missing checkpoint"),
    pytest.param({"other.pt": make_zip({"notes.txt": b"x"})}, ["--init-from", "{tmp}/other.pt"],
                 1, ["other.pt", "is not a lyricgen checkpoint"], id="init from a foreign zip"),
    # runtime problems with the corpus: exit 1
    pytest.param({}, ["--data", "{tmp}/missing.txt"], 1, ["corpus not found", "missing.txt"],
                 id="missing corpus"),
    pytest.param({"c.txt": b""}, ["--data", "{tmp}/c.txt"], 1, ["holds no text"],
                 id="empty corpus"),
    pytest.param({"c.txt": b" \n\t\r\n  \n"}, ["--data", "{tmp}/c.txt"], 1, ["holds no text"],
                 id="whitespace-only corpus"),
    pytest.param({"c.txt": bytes(range(256)) * 8}, ["--data", "{tmp}/c.txt"], 1,
                 ["looks binary"], id="binary corpus"),
    pytest.param({"c.txt": "分开 不分开\n".encode("gbk") * 50}, ["--data", "{tmp}/c.txt"], 1,
                 ["not UTF-8"], id="non-UTF-8 corpus"),
    pytest.param({"c.txt": "分开 不分开\n".encode("utf-16") * 50}, ["--data", "{tmp}/c.txt"], 1,
                 ["c.txt is UTF-16 text", "convert it to UTF-8"], id="UTF-16 corpus"),
    pytest.param({"c.txt": "walking in the night\n".encode("utf-16-be") * 50},
                 ["--data", "{tmp}/c.txt"], 1, ["is UTF-16 text"],
                 id="UTF-16 corpus without a byte-order mark"),
    # the training part is what --val-fraction leaves: the error names it
    pytest.param({}, ["--val-fraction", "0.999"], 1, ["--val-fraction 0.999 leaves",
                                                     "lower --val-fraction"],
                 id="val fraction leaving too little"),
    pytest.param({"c.zip": make_zip({"readme.md": b"# songs", "cover.jpg": b"\xff\xd8"})},
                 ["--data", "{tmp}/c.zip"], 1, ["zip without any .txt member"],
                 id="zip without text"),
    pytest.param({"c.zip": b"PK\x03\x04 this is not really a zip"}, ["--data", "{tmp}/c.zip"],
                 1, ["damaged zip"], id="damaged zip"),
    pytest.param({"songs/cover.jpg": b"\xff\xd8"}, ["--data", "{tmp}/songs"], 1,
                 ["holds no .txt files"], id="folder without text"),
    # 8 sequences x 16 steps need 8 x 17 = 136 characters; this text has 3 x 12 = 36
    pytest.param({"c.txt": "月光 窗外 雨下 风吹\n".encode() * 3}, ["--data", "{tmp}/c.txt"], 1,
                 ["too short for one batch"], id="corpus shorter than one batch"),
    # --out that is not a writable folder: exit 1
    pytest.param({"afile": b"x"}, ["--out", "{tmp}/afile/run"], 1,
                 ["not a writable folder", "afile is a file"], id="out under a file"),
    pytest.param({}, ["--out", "/proc/1"], 1, ["not a writable folder", "/proc/1 is not writable"],
                 id="out a folder of the system's"),
    pytest.param({"afile": b"x"}, ["--out", "{tmp}/afile"], 1, ["not a writable folder"],
                 id="out is a file"),
    pytest.param({"afile": b"x"}, ["--out", "{tmp}/afile/new\nline"], 1,
                 ["not a writable folder", "new\\nline"], id="out with a newline in its name"),
    # bad option values, the error naming the option typed: exit 2 ("valid int": Typer
    # versions word it "valid int." or "valid integer")
    pytest.param({}, ["--epochs", "0"], 2, ["--epochs must be at least 1"], id="epochs 0"),
    pytest.param({}, ["--epochs", "-3"], 2, ["--epochs must be at least 1"], id="epochs -3"),
    pytest.param({}, ["--epochs", "ten"], 2, ["Invalid value for '--epochs'", "valid int"],
                 id="epochs not a number"),
    pytest.param({}, ["--hidden-size", "-1"], 2, ["--hidden-size must be at least 1"],
                 id="negative hidden size"),
    pytest.param({}, ["--embedding-size", "-16"], 2, ["--embedding-size must be at least 1"],
                 id="negative embedding size"),
    pytest.param({}, ["--num-layers", "0"], 2, ["--num-layers must be at least 1"],
                 id="zero layers"),
    pytest.param({}, ["--batch-size", "-8"], 2, ["--batch-size must be at least 1"],
                 id="negative batch size"),
    pytest.param({}, ["--num-steps", "-1"], 2, ["--num-steps must be at least 1"],
                 id="negative num steps"),
    pytest.param({}, ["--max-chars", "-5"], 2, ["--max-chars must be at least 1"],
                 id="negative max chars"),
    pytest.param({}, ["--dropout", "1.5"], 2, ["--dropout must be in [0, 1)"],
                 id="dropout 1.5"),
    pytest.param({}, ["--ngram-order", "1"], 2, ["--ngram-order must be 0 (no counts) or from 2"],
                 id="n-gram order 1"),
    pytest.param({}, ["--ngram-order", "9"], 2, ["--ngram-order must be 0 (no counts) or from 2"],
                 id="n-gram order 9"),
    pytest.param({}, ["--val-fraction", "1"], 2, ["--val-fraction must be in [0, 1)"],
                 id="val fraction 1"),
    pytest.param({}, ["--lr", "-0.1"], 2, ["--lr must be a positive number"], id="negative lr"),
    pytest.param({}, ["--lr", "nan"], 2, ["--lr must be a positive number"], id="lr nan"),
    pytest.param({}, ["--lr", "inf"], 2, ["--lr must be a positive number"], id="lr inf"),
    pytest.param({}, ["--weight-decay", "inf"], 2, ["--weight-decay must be a finite number"],
                 id="weight decay inf"),
    pytest.param({}, ["--clip", "nan"], 2, ["--clip must be a finite number"], id="clip nan"),
    pytest.param({}, ["--clip", "inf"], 2, ["--clip must be a finite number"], id="clip inf"),
    pytest.param({}, ["--time-limit", "0"], 2, ["--time-limit must be a finite number > 0"],
                 id="time limit 0"),
    pytest.param({}, ["--time-limit", "inf"], 2, ["--time-limit must be a finite number > 0"],
                 id="time limit inf"),
    pytest.param({}, ["--newlines", "drop"], 2, ["'drop' is not one of"],
                 id="unknown newlines mode"),
    pytest.param({}, ["--backend", "gpu-lstm"], 2, ["--backend must be one of", "scratch"],
                 id="unknown backend"),
    pytest.param({}, ["--device", "cuda"], 2, ["no CUDA", "--device cpu"],
                 id="cuda without CUDA"),
    pytest.param({}, ["--device", "tpu"], 2, ["--device must be auto, cpu or cuda"],
                 id="unknown device"),
    # integers beyond any sane size: a range check, not an overflow deep in torch
    pytest.param({}, ["--batch-size", str(10**23)], 2, ["--batch-size must be at most 2147483647"],
                 id="batch size 10**23"),
    pytest.param({}, ["--embedding-size", str(10**23)], 2,
                 ["--embedding-size must be at most 2147483647"], id="embedding size 10**23"),
    pytest.param({}, ["--epochs", str(10**23)], 2, ["--epochs must be at most 2147483647"],
                 id="epochs 10**23"),
    pytest.param({}, ["--seed", str(10**23)], 2, ["--seed must be at most 9223372036854775807"],
                 id="seed 10**23"),
    pytest.param({}, ["--seed", "-1"], 2, ["--seed must be at least 0"], id="negative seed"),
    # sizes in range that no memory holds: refused from an estimate, before allocating
    pytest.param({}, ["--hidden-size", "1000000000"], 2,
                 ["--hidden-size 1000000000 needs about", "EB of memory", "lower --hidden-size"],
                 id="hidden size 10**9"),
    # config files: exit 2
    pytest.param({"c.toml": b"[model]\nhiden_size = 16\n"}, ["--config", "{tmp}/c.toml"], 2,
                 ["unknown key 'hiden_size'", "did you mean 'hidden_size'"],
                 id="unknown config key"),
    pytest.param({"c.toml": b"[data]\nval_fraction = 0.1\n[optim]\nlr = 1\n"},
                 ["--config", "{tmp}/c.toml"], 2, ["unknown table [optim]"],
                 id="unknown config table"),
    pytest.param({"c.toml": b"[train]\nepochs = \"ten\"\n"}, ["--config", "{tmp}/c.toml"], 2,
                 ["c.toml [train] epochs must be an integer", "'ten'"],
                 id="wrong-typed config value"),
    # a preset's bad value: the error names the file, the table and the key (the options given
    # on the command line, as TINY's are, win over a preset: these keys are not among them)
    pytest.param({"c.toml": b"[train]\nplateau_patience = 0\n"}, ["--config", "{tmp}/c.toml"],
                 2, ["c.toml [train] plateau_patience must be at least 1"],
                 id="preset value out of range"),
    pytest.param({"c.toml": f"[train]\nseed = {10**23}\n".encode()},
                 ["--config", "{tmp}/c.toml"], 2,
                 ["c.toml [train] seed must be at most 9223372036854775807"],
                 id="preset seed 10**23"),
    pytest.param({"c.toml": b"[data]\nmax_chars = 0\n"}, ["--config", "{tmp}/c.toml"], 2,
                 ["c.toml [data] max_chars must be at least 1"], id="preset max chars 0"),
    pytest.param({"c.toml": b"[train]\nclip = inf\n"}, ["--config", "{tmp}/c.toml"], 2,
                 ["c.toml [train] clip must be a finite number"], id="preset clip inf"),
    pytest.param({"c.toml": f"[train]\nclip = {10**400}\n".encode()},
                 ["--config", "{tmp}/c.toml"], 2,
                 ["c.toml [train] clip must be a finite number"], id="preset clip 10**400"),
    pytest.param({"c.toml": b"[train]\nclip = true\n"}, ["--config", "{tmp}/c.toml"], 2,
                 ["clip must be a number"], id="boolean where a number goes"),
    pytest.param({"c.toml": b"[model]\nhidden_size = 'big'\n"}, ["--config", "{tmp}/c.toml"],
                 2, ["hidden_size must be an integer"], id="string where an integer goes"),
    pytest.param({"c.toml": b"[train]\nsampling = 'sideways'\n"},
                 ["--config", "{tmp}/c.toml"], 2, ["sampling must be one of"],
                 id="unknown choice in config"),
    pytest.param({"c.toml": b"[model]\nbackend = \"gpu-lstm\"\n"}, ["--config", "{tmp}/c.toml"],
                 2, ["backend must be one of"], id="unknown backend in config"),
    pytest.param({"c.toml": b"[train\nepochs = 3\n"}, ["--config", "{tmp}/c.toml"], 2,
                 ["not valid TOML"], id="broken TOML"),
    pytest.param({"c.toml": "[train]\nseed = 1 # Ä\n".encode("latin-1")},
                 ["--config", "{tmp}/c.toml"], 2, ["not valid TOML"], id="non-UTF-8 TOML"),
    pytest.param({}, ["--config", "{tmp}/missing.toml"], 2,
                 ["config file not found", "missing.toml"], id="missing config file"),
    pytest.param({"configs/x": b""}, ["--config", "{tmp}/configs"], 2,
                 ["config file", "configs is a folder"], id="config file is a folder"),
]


def write_files(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


@pytest.mark.parametrize("value", ["abc", "", "nan", "inf", "1e30", "0", "-1"])
def test_a_bad_distributed_timeout_is_one_line_before_anything_starts(lyrics_file, tmp_path,
                                                                      monkeypatch, value):
    monkeypatch.setenv("LYRICGEN_DIST_TIMEOUT", value)
    result = cli("train", *cli_args(tiny_options(lyrics_file, tmp_path / "run")))
    assert_one_line_error(result, 2, "LYRICGEN_DIST_TIMEOUT must be a positive number of "
                          "seconds", repr(value))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("files, args, code, phrases", TRAIN_CASES)
def test_bad_training_input_is_one_line_and_keeps_the_checkpoint(
        run_copy, lyrics_file, tmp_path, files, args, code, phrases):
    write_files(tmp_path, files)
    before = snapshot(run_copy)
    # --overwrite: a good run would start over, so the checks must all come before any delete
    result = cli("train", "--data", lyrics_file, "--out", run_copy, "--overwrite",
                 "--preview-every", 0, *TINY_ARGS,
                 *(a.format(tmp=tmp_path) for a in args))
    assert_one_line_error(result, code, *phrases)
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("files, args, code, phrases", TRAIN_CASES)
def test_a_failed_start_leaves_no_new_out_folder(lyrics_file, tmp_path, files, args, code,
                                                 phrases):
    write_files(tmp_path, files)
    new = tmp_path / "new"
    result = cli("train", "--data", lyrics_file, "--out", new / "run", *TINY_ARGS,
                 *(a.format(tmp=tmp_path) for a in args))
    assert_one_line_error(result, code, *phrases)
    assert not new.exists()


def test_the_training_matrix_would_see_a_changed_checkpoint(run_copy, lyrics_file):
    """The same command with good input does start over: the checks above can fail."""
    before = snapshot(run_copy)
    result = cli("train", "--data", lyrics_file, "--out", run_copy, "--overwrite",
                 *TINY_ARGS, "--epochs", 1, "--seed", 5)
    assert result.exit_code == 0, result.output
    assert snapshot(run_copy) != before and metric_epochs(run_copy) == [1]


PRESET = Path(__file__).parent.parent / "configs" / "default.toml"


@pytest.mark.parametrize("args, code, phrases", [
    pytest.param(["--hidden-size", 64], 2, ["differ", "--hidden-size 64 (the run has 32)"],
                 id="changed setting"),
    pytest.param(["--config", PRESET, "--lr", 0.5], 2,
                 ["differ", "--hidden-size 512 (the run has 32)", "--lr 0.5 (the run has 0.01)"],
                 id="preset with other settings"),
    pytest.param(["--data", "other.txt"], 1, ["corpus not found", "other.txt"],
                 id="missing corpus"),
    pytest.param(["--epochs", 0], 2, ["--epochs must be at least 1"], id="epochs 0"),
    pytest.param(["--epochs", 10**23], 2, ["--epochs must be at most 2147483647"],
                 id="epochs 10**23"),
    pytest.param(["--device", "cuda"], 2, ["no CUDA", "--device cpu"], id="cuda without CUDA"),
    pytest.param(["--init-from", "other/best.pt"], 2, ["--init-from starts a new run",
                                                      "--resume continues this one"],
                 id="init from with resume"),
])
def test_bad_resume_options_keep_the_checkpoint(run_copy, args, code, phrases):
    before = snapshot(run_copy)
    result = cli("train", "--resume", "--out", run_copy, *args)
    assert_one_line_error(result, code, *phrases)
    assert snapshot(run_copy) == before


def test_the_starting_command_with_resume_added_continues_the_run(lyrics_file, tmp_path):
    """Settings given again with their stored values are accepted; the corpus may have moved
    (its fingerprint is what must match)."""
    out = tmp_path / "run"
    start = ["train", "--data", lyrics_file, "--out", out, *TINY_ARGS]
    assert cli(*start, "--epochs", 1).exit_code == 0
    moved = tmp_path / "moved.txt"
    lyrics_file.rename(moved)
    result = cli(*[moved if a == lyrics_file else a for a in start], "--epochs", 2, "--resume")
    assert result.exit_code == 0, result.output
    assert metric_epochs(out) == [1, 2]


@pytest.mark.parametrize("change, phrases", [
    pytest.param(lambda corpus: corpus.write_text(lyrics(seed=1), encoding="utf-8"),
                 ["is not the text this checkpoint was trained on"], id="changed corpus file"),
    pytest.param(lambda corpus: corpus.unlink(), ["corpus not found"], id="deleted corpus file"),
])
def test_resume_needs_the_same_corpus(lyrics_file, tmp_path, change, phrases):
    out = tmp_path / "run"
    done = cli("train", "--data", lyrics_file, "--out", out, *TINY_ARGS,
               "--epochs", 1)
    assert done.exit_code == 0, done.output
    change(lyrics_file)
    before = snapshot(out)
    assert_one_line_error(cli("train", "--resume", "--out", out, "--epochs", 2), 1, *phrases)
    assert snapshot(out) == before


def test_resume_without_a_run(tmp_path):
    result = cli("train", "--resume", "--out", tmp_path / "empty")
    assert_one_line_error(result, 1, "nothing to resume", "last.pt does not exist")


def test_debug_shows_the_traceback(tmp_path):
    command = [sys.executable, "-m", "lyricgen", "--debug", "train", "--data",
               str(tmp_path / "missing.txt"), "--out", str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path,
                          env=child_env(), timeout=120)
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "LyricgenError: corpus not found" in done.stderr


# --- bad input to `lyricgen sample` --------------------------------------------------------------

@pytest.mark.parametrize("args, phrases", [
    pytest.param(["--length", -1], ["--length must be at least 0"], id="negative length"),
    pytest.param(["--length", "many"], ["Invalid value for '--length'", "valid int"],
                 id="length not a number"),
    pytest.param(["--temperature", 0], ["--temperature must be a finite number > 0"],
                 id="temperature 0"),
    pytest.param(["--temperature", -1], ["--temperature must be a finite number > 0"],
                 id="negative temperature"),
    pytest.param(["--temperature", "nan"], ["--temperature must be a finite number > 0"],
                 id="temperature nan"),
    pytest.param(["--temperature", "inf"], ["--temperature must be a finite number > 0"],
                 id="temperature inf"),
    pytest.param(["--lines", 2, "--start-temperature", "inf"],
                 ["--start-temperature must be a finite number > 0"],
                 id="start temperature inf"),
    pytest.param(["--acrostic", "分" * 1001], ["--acrostic", "1001 lines", "at most 1000"],
                 id="acrostic of 1001 characters"),
    pytest.param(["--rhyme-with", "嗯", "--lines", 2], ["--rhyme-with", "嗯 has no rhyme group"],
                 id="rhyme with a character without a final"),
    pytest.param(["--prefix", "月光\n分开\n窗外", "--lines", 2],
                 ["--prefix holds more lines than the song's 2"], id="prefix of more lines"),
    pytest.param(["--top-k", 0], ["--top-k must be at least 1"], id="top-k 0"),
    pytest.param(["--top-p", 0], ["--top-p must be in (0, 1]"], id="top-p 0"),
    pytest.param(["--top-p", 1.5], ["--top-p must be in (0, 1]"], id="top-p 1.5"),
    pytest.param(["--num-samples", 0], ["--num-samples must be at least 1"], id="no samples"),
    pytest.param(["--seed", 10**23], ["--seed must be from 0 to"], id="seed 10**23"),
    pytest.param(["--num-samples", 10**5], ["--num-samples must be at most 10000"],
                 id="a hundred thousand samples"),
    pytest.param(["--num-samples", 10_000, "--candidates", 1024],
                 ["memory", "lower --num-samples or --candidates"],
                 id="ten thousand samples of 1024 candidates"),
    pytest.param(["--length", 10**9, "--num-samples", 64, "--json"],
                 ["--length 1000000000", "memory", "lower --length"], id="a kept text too long"),
    pytest.param(["--backend", "gpu-lstm"], ["--backend must be one of"], id="unknown backend"),
    pytest.param(["--unknown", "ignore"], ["'ignore' is not one of"], id="unknown policy"),
    pytest.param(["--device", "cuda"], ["no CUDA", "--device cpu"], id="cuda without CUDA"),
    pytest.param(["--device", "tpu"], ["unknown device 'tpu'"], id="unknown device"),
    pytest.param(["--device", "mps"], ["unknown device 'mps'"], id="mps"),
    pytest.param(["--device", "meta"], ["unknown device 'meta'"], id="meta"),
    pytest.param(["--prefix", "分开Zq"], ["not in the model's vocabulary", "'Z', 'q'",
                                        "--unknown skip"], id="prefix outside the vocabulary"),
    pytest.param(["--prefix", "分开\udcff", "--json"], ["--prefix", "not valid UTF-8"],
                 id="prefix not UTF-8"),
])
def test_bad_sampling_input_is_a_usage_error(trained, args, phrases):
    result = cli("sample", "--checkpoint", trained / "best.pt", "--length", 5, *args)
    assert_one_line_error(result, 2, *phrases)


@pytest.mark.parametrize("command", ["sample", "train"])
def test_a_preset_s_bad_sample_value_names_its_file_table_and_key(trained, lyrics_file,
                                                                   tmp_path, command):
    """`seed` is a key of [train] and of [sample]: the error names the table it is in, and a
    training option of the same name does not take the blame."""
    preset = tmp_path / "c.toml"
    preset.write_text("[sample]\nseed = -1\n", encoding="utf-8")
    args = ["--checkpoint", trained / "best.pt"] if command == "sample" else \
        ["--data", lyrics_file, "--seed", 3, "--out", tmp_path / "run"]
    assert_one_line_error(cli(command, "--config", preset, *args), 2,
                          f"{preset} [sample] seed must be from 0")


@pytest.mark.parametrize("key, value", [("prefix", '["分开"]'), ("checkpoint", '"x.pt"')])
def test_a_preset_key_for_a_command_line_only_option_says_where_it_goes(trained, tmp_path,
                                                                        key, value):
    preset = tmp_path / "c.toml"
    preset.write_text(f"[sample]\n{key} = {value}\n", encoding="utf-8")
    assert_one_line_error(cli("sample", "--config", preset, "--checkpoint", trained / "best.pt"),
                          2, f"[sample]: unknown key '{key}'",
                          f"--{key} is given on the command line, not in a preset")


def test_sample_with_stdout_closed_is_one_line(trained):
    done = subprocess.run(["sh", "-c", f'exec "{sys.executable}" -m lyricgen sample '
                           f'--checkpoint "{trained / "best.pt"}" >&-'],
                          capture_output=True, text=True, env=child_env(), timeout=120)
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["error: standard output is closed: there is nowhere to "
                                        "write the lyrics"]


def test_sample_streams_into_a_pipe_and_stops_when_the_reader_goes(trained):
    """A billion characters into `head`: the first ones arrive at once, and when `head` has
    what it wants, sampling stops quietly (no traceback, no growing memory)."""
    sample = subprocess.Popen([sys.executable, "-m", "lyricgen", "sample", "--checkpoint",
                               str(trained / "best.pt"), "--length", str(10**9), "--seed", "1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env())
    try:
        head, deadline = b"", time.monotonic() + TIMEOUT
        while len(head) < 60:  # bytes, as `head -c 60` reads them
            ready, _, _ = select.select([sample.stdout], [], [], deadline - time.monotonic())
            assert ready, f"nothing written in {TIMEOUT} s"
            head += os.read(sample.stdout.fileno(), 60 - len(head))
        sample.stdout.close()  # the reader goes
        assert sample.wait(timeout=TIMEOUT) == 0
        assert sample.stderr.read() == b""
    finally:
        sample.kill()
        sample.wait()


# --- damaged, foreign, newer and malicious checkpoints -------------------------------------------

class RunsCode:
    """Unpickling this calls `function(argument)`: what a malicious checkpoint would do."""

    def __init__(self, function, argument):
        self.function, self.argument = function, argument

    def __reduce__(self):
        return (self.function, (self.argument,))


def newer_format(good: Path, path: Path) -> None:
    payload = torch.load(good, weights_only=True, map_location="cpu")
    payload["version"] = 99
    torch.save(payload, path)


def without_weights(good: Path, path: Path) -> None:
    payload = torch.load(good, weights_only=True, map_location="cpu")
    del payload["model"]
    torch.save(payload, path)


def non_finite_weights(good: Path, path: Path) -> None:
    payload = torch.load(good, weights_only=True, map_location="cpu")
    payload["model"]["rnn.weight_hh_l0"][0, 0] = float("nan")
    torch.save(payload, path)


def without_optimizer_state(good: Path, path: Path) -> None:
    payload = torch.load(good, weights_only=True, map_location="cpu")
    del payload["optimizer"]
    torch.save(payload, path)


def random_bytes(good: Path, path: Path) -> None:
    path.write_bytes(random.Random(0).randbytes(good.stat().st_size))


def truncated(good: Path, path: Path) -> None:
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def foreign_zip(good: Path, path: Path) -> None:
    path.write_bytes(make_zip({"notes.txt": "分开\n".encode()}))


def foreign_torch_file(good: Path, path: Path) -> None:
    torch.save({"state_dict": {"weight": torch.zeros(3)}}, path)


BAD_CHECKPOINTS = [
    pytest.param(truncated, ["not a readable checkpoint"], id="truncated"),
    pytest.param(random_bytes, ["not a readable checkpoint"], id="random bytes"),
    pytest.param(foreign_zip, ["is not a lyricgen checkpoint", "not one that torch.save wrote"],
                 id="foreign zip"),
    pytest.param(foreign_torch_file, ["is not a lyricgen checkpoint"], id="foreign torch file"),
    pytest.param(newer_format, ["newer lyricgen", "format 99", "upgrade"], id="newer format"),
    pytest.param(without_weights, ["damaged", "'model'"], id="without its weights"),
    pytest.param(non_finite_weights, ["non-finite weights", "earlier checkpoint"],
                 id="non-finite weights"),
]


@pytest.mark.parametrize("make, phrases", BAD_CHECKPOINTS)
def test_sample_refuses_a_bad_checkpoint(trained, tmp_path, make, phrases):
    bad = tmp_path / "bad.pt"
    make(trained / "last.pt", bad)
    assert_one_line_error(cli("sample", "--checkpoint", bad), 1, "bad.pt", *phrases)


@pytest.mark.parametrize("make, phrases", [
    *BAD_CHECKPOINTS,
    pytest.param(without_optimizer_state, ["damaged", "training state", "'optimizer'"],
                 id="without its optimizer state"),
])
def test_resume_refuses_a_bad_checkpoint_and_leaves_it(run_copy, make, phrases):
    make(run_copy / "best.pt", run_copy / "last.pt")
    before = snapshot(run_copy)
    result = cli("train", "--resume", "--out", run_copy, "--epochs", 5)
    assert_one_line_error(result, 1, "last.pt", *phrases)
    assert snapshot(run_copy) == before


def make_not_a_file(path: Path, kind: str) -> None:
    if kind == "a folder":
        path.mkdir()
    elif kind == "a FIFO":
        os.mkfifo(path)
    elif kind == "a device":
        path.symlink_to("/dev/zero")


NOT_A_FILE = [("missing", "not found"), ("a folder", "is a folder"),
              ("a FIFO", "is not a regular file but a named pipe (FIFO)"),
              ("a device", "is not a regular file but a device")]


@pytest.fixture
def no_hang():
    """A test that would wait forever (reading a FIFO no one writes) fails instead."""
    def timed_out(signum, frame):
        raise TimeoutError("hung: something opened a FIFO or read a device")

    previous = signal.signal(signal.SIGALRM, timed_out)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("command", ["train", "sample", "compare"])
@pytest.mark.parametrize("kind", ["a FIFO", "a device"])
def test_a_preset_that_is_a_fifo_or_a_device_is_refused_not_waited_on(tmp_path, command, kind,
                                                                      no_hang):
    preset = tmp_path / "song.toml"
    make_not_a_file(preset, kind)
    assert_one_line_error(cli(command, "--config", preset), 2, "config file", "song.toml",
                          "not a regular file", "TOML preset")


@pytest.mark.parametrize("kind, expected", NOT_A_FILE, ids=[k for k, _ in NOT_A_FILE])
def test_sample_without_a_checkpoint_file(tmp_path, kind, expected, no_hang):
    path = tmp_path / "model.pt"
    make_not_a_file(path, kind)
    assert_one_line_error(cli("sample", "--checkpoint", path), 1, "model.pt", expected)


@pytest.mark.parametrize("kind, expected", NOT_A_FILE[2:], ids=[k for k, _ in NOT_A_FILE[2:]])
def test_resume_from_a_last_pt_that_is_not_a_file(run_copy, kind, expected, no_hang):
    (run_copy / "last.pt").unlink()
    make_not_a_file(run_copy / "last.pt", kind)
    before = {name: (run_copy / name).read_bytes() for name in ("best.pt", "metrics.jsonl")}
    result = cli("train", "--resume", "--out", run_copy, "--epochs", 5)
    assert_one_line_error(result, 1, "last.pt", expected)
    assert {name: (run_copy / name).read_bytes() for name in before} == before
    assert sorted(os.listdir(run_copy)) == sorted(OUTPUTS)


@pytest.mark.parametrize("function", [os.system, builtins.exec], ids=["os.system", "exec"])
def test_a_checkpoint_that_would_run_code_is_refused_and_the_code_never_runs(
        run_copy, tmp_path, function):
    marker = tmp_path / "the-code-ran"
    code = f"touch {marker}" if function is os.system else f"open({str(marker)!r}, 'w').close()"
    payload = torch.load(run_copy / "last.pt", weights_only=True)
    payload["config"] = RunsCode(function, code)
    torch.save(payload, run_copy / "last.pt")
    before = snapshot(run_copy)

    sampled = cli("sample", "--checkpoint", run_copy / "last.pt")
    assert_one_line_error(sampled, 1, "refused", "would run code")
    resumed = cli("train", "--resume", "--out", run_copy, "--epochs", 5)
    assert_one_line_error(resumed, 1, "refused", "would run code")
    assert not marker.exists()
    assert snapshot(run_copy) == before

    torch.load(run_copy / "last.pt", weights_only=False)  # the unsafe way does run it
    assert marker.exists()


# --- a run folder in use -------------------------------------------------------------------------

HOLD_LOCK = ("import sys; from pathlib import Path; from lyricgen.run_lock import RunLock; "
             "RunLock().hold(Path(sys.argv[1])); print('held', flush=True); sys.stdin.read()")


@pytest.fixture
def lock_holder(run_copy):
    """Another process holding run_copy's lock, as a run writing it does."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_copy)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=child_env())
    assert holder.stdout.readline() == b"held\n"
    yield holder
    holder.kill()
    holder.wait()


@pytest.mark.parametrize("args", [
    pytest.param(["train", *TINY_ARGS, "--overwrite"], id="train --overwrite"),
    pytest.param(["train", "--resume", "--epochs", 5], id="train --resume"),
    pytest.param(["compare", *TINY_ARGS, "--epochs", 1], id="compare"),
])
def test_a_second_run_into_a_folder_in_use_is_refused(run_copy, lyrics_file, lock_holder, args):
    before = snapshot(run_copy)
    assert before[LOCK] == f"{lock_holder.pid}\n".encode()
    data = [] if "--resume" in args else ["--data", lyrics_file]
    result = cli(*args, "--out", run_copy, *data)
    assert_one_line_error(result, 1, f"--out {run_copy} is in use by another lyricgen run "
                                     f"(pid {lock_holder.pid})", "wait for it to end")
    assert snapshot(run_copy) == before


def test_the_lock_of_a_killed_run_blocks_nothing_and_a_run_removes_its_own(run_copy,
                                                                            lock_holder):
    lock_holder.kill()  # as kill -9 would: the lock file stays, with a dead pid
    lock_holder.wait()
    assert (run_copy / LOCK).exists()
    resume_one_more_epoch(run_copy)  # which also checks that no .lock is left


# --- failing writes ------------------------------------------------------------------------------

def fail_second_save(monkeypatch, error: OSError) -> None:
    """The second checkpoint save (last.pt after epoch 2) fails half-way, once."""
    real, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            f.write(b"PK\x03\x04 half a checkpoint")
            raise error
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(lyricgen.checkpoint.torch, "save", save)


def fail_second_save_on_a_full_disk(monkeypatch, error: Exception) -> None:
    """As torch's zip writer fails when the disk fills: a C++ error about positions."""
    fail_second_save(monkeypatch, error)
    usage = shutil.disk_usage
    monkeypatch.setattr(lyricgen.checkpoint.shutil, "disk_usage",
                        lambda folder: usage(folder)._replace(free=0))


def fail_second_rename(monkeypatch, error: OSError) -> None:
    """The second rename onto last.pt fails, once."""
    real, calls = os.replace, []

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == "last.pt":
            calls.append(1)
            if len(calls) == 2:
                raise error
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(lyricgen.checkpoint.os, "replace", replace)


def fail_second_metrics_append(monkeypatch, error: OSError) -> None:
    """The second append to metrics.jsonl (after epoch 2's checkpoint) fails, once."""
    real, calls = Path.open, []

    def open_(self, mode="r", *args, **kwargs):
        if self.name == "metrics.jsonl" and mode == "a":
            calls.append(1)
            if len(calls) == 2:
                raise error
        return real(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_)


@pytest.mark.parametrize("inject, error, phrases, kept_epoch", [
    pytest.param(fail_second_save, OSError(errno.ENOSPC, "No space left on device"),
                 ["could not write checkpoint", "No space left on device",
                  "the previous one is kept"], 1, id="disk full"),
    pytest.param(fail_second_save_on_a_full_disk,
                 RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0"),
                 ["could not write checkpoint", "could not be written in full",
                  "no space left on device", "the previous one is kept"], 1,
                 id="disk full, as torch says it"),
    pytest.param(fail_second_rename, PermissionError(errno.EACCES, "Permission denied"),
                 ["could not write checkpoint", "Permission denied", "the previous one is kept"],
                 1, id="permission denied"),
    # The metrics row is written after its epoch's checkpoint: that checkpoint is kept.
    pytest.param(fail_second_metrics_append,
                 OSError(errno.ENOSPC, "No space left on device", "metrics.jsonl"),
                 ["metrics.jsonl", "No space left on device"], 2, id="disk full for metrics"),
])
def test_a_failing_write_keeps_the_previous_checkpoint(lyrics_file, tmp_path, monkeypatch,
                                                       inject, error, phrases, kept_epoch):
    out = tmp_path / "run"
    inject(monkeypatch, error)
    result = cli("train", "--data", lyrics_file, "--out", out, *TINY_ARGS,
                 "--epochs", 3)
    assert_one_line_error(result, 1, *phrases)
    assert set(os.listdir(out)) == OUTPUTS  # no temporary file left behind
    last = checkpoint.load(out / "last.pt", training_state=True)
    assert last.progress.epoch == kept_epoch and len(last.history) == kept_epoch

    resumed = cli("train", "--resume", "--out", out, "--device", "cpu")
    assert resumed.exit_code == 0, resumed.output
    assert metric_epochs(out) == [1, 2, 3]
    assert saved_epoch(out) == 3


# --- signals and kill -9 during training, in a real process --------------------------------------

FAULT_ARGS = ["--hidden-size", "64", "--embedding-size", "16", "--num-layers", "1", "--dropout",
              "0", "--num-steps", "16", "--batch-size", "8", "--epochs", "1000",
              "--preview-every", "0", "--device", "cpu"]
TIMEOUT = 120  # seconds; generous for a loaded machine, reached only when something is wrong


def stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_mtime_ns


def size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LYRICGEN_DEBUG"}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def long_corpus(tmp_path_factory) -> Path:
    """About 50 batches an epoch at FAULT_ARGS: checkpoints come every fraction of a second."""
    path = tmp_path_factory.mktemp("long") / "lyrics.txt"
    path.write_text(lyrics(num_lines=1000, seed=3), encoding="utf-8")
    return path


class Training:
    """`lyricgen train --out OUT ARGS` in a child process, its stdout and stderr in files
    beside OUT."""

    def __init__(self, out: Path, *args: str):
        self.out = out
        stem = out.parent / f"{out.name}-{time.monotonic_ns()}"
        self.stdout_path, self.stderr_path = stem.with_suffix(".stdout"), stem.with_suffix(".stderr")
        with self.stdout_path.open("wb") as stdout, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lyricgen", "train", "--out", str(out), *args],
                stdout=stdout, stderr=err, cwd=out.parent, env=child_env())

    @classmethod
    def fresh(cls, out: Path, corpus: Path) -> Training:
        return cls(out, "--data", str(corpus), *FAULT_ARGS)

    def wait_for(self, condition, what: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not condition():
            assert self.proc.poll() is None, f"training ended before {what}: {self.stderr()}"
            assert time.monotonic() < deadline, f"no {what} after {TIMEOUT} s"
            time.sleep(0.001)

    def wait_for_checkpoint(self) -> None:
        """Until last.pt changes (this process has trained an epoch)."""
        last = self.out / "last.pt"
        old = stamp(last)
        self.wait_for(lambda: stamp(last) not in (old, None), "a new last.pt")

    def wait_for_a_write(self) -> None:
        """Until this process is half-way through writing last.pt (its temporary file has
        bytes; the previous last.pt is still in place)."""
        tmp = self.out / f".last.pt.{self.proc.pid}.tmp"
        self.wait_for(lambda: size(tmp) > 0, "a write of last.pt")

    def wait_for_an_epoch_end(self) -> None:
        """Until metrics.jsonl gains a line: the epoch's checkpoint is about to be written."""
        metrics = self.out / "metrics.jsonl"
        old = size(metrics)
        self.wait_for(lambda: size(metrics) > old, "the end of an epoch")

    def stop(self, sig: int) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=TIMEOUT)

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def started():
    """Training processes started by a test; any still running at its end are killed."""
    runs: list[Training] = []
    yield runs
    for training in runs:
        if training.proc.poll() is None:
            training.proc.kill()
            training.proc.wait()


def assert_clean_checkpoint(out: Path) -> None:
    """last.pt loads and is at a clean point; only checkpoint.py's temporaries and, after a
    kill -9, the run's lock file (which then locks nothing) may lie beside."""
    assert all(name in OUTPUTS or name == LOCK or TEMPORARY.match(name)
               for name in os.listdir(out)), os.listdir(out)
    saved = checkpoint.load(out / "last.pt", training_state=True)
    p = saved.progress
    assert len(saved.history) == p.epoch >= 1
    assert len(p.batch_losses) == p.batch
    assert (p.hidden is not None) == (p.batch > 0)  # adjacent sampling carries the state


def resume_one_more_epoch(out: Path) -> None:
    """--resume finishes the epoch under way (or trains one more), leaving no temporaries."""
    epochs = saved_epoch(out) + 1
    result = cli("train", "--resume", "--out", out, "--epochs", epochs)
    assert result.exit_code == 0, result.output
    assert metric_epochs(out) == list(range(1, epochs + 1))
    assert saved_epoch(out) == epochs
    assert set(os.listdir(out)) == OUTPUTS


def test_sigint_and_sigterm_save_last_pt_and_resume_continues(long_corpus, tmp_path, started):
    signals = {signal.SIGINT: 130, signal.SIGTERM: 143}
    # Started together, so the two wait for Python and torch to load at the same time.
    started += [Training.fresh(tmp_path / sig.name, long_corpus) for sig in signals]
    rng = random.Random(1)
    for training, (sig, code) in zip(started, signals.items()):
        training.wait_for_checkpoint()
        time.sleep(rng.uniform(0, 0.3))
        assert training.stop(sig) == code, training.stderr()
        # A normal stop, as a time limit is: no error, a line saying how to continue, and the
        # summary; the exit code still tells the shell which signal stopped it.
        assert training.stderr() == ""
        stdout = training.stdout()
        # at "epoch E, batch B", or at "the end of epoch E" when the signal met the last batch
        stopped = [line for line in stdout.splitlines()
                   if line.startswith((f"interrupted by {sig.name} at epoch",
                                       f"interrupted by {sig.name} at the end of epoch"))]
        assert len(stopped) == 1 and "holds it (continue with --resume)" in stopped[0], stdout
        assert f"training interrupted by {sig.name}" in stdout  # the summary table's title
        assert "checkpoints: " in stdout and "last.pt" in stdout.split("checkpoints: ")[1]
        assert_clean_checkpoint(training.out)
        assert set(os.listdir(training.out)) == OUTPUTS  # a clean stop leaves no temporaries
        sampled = cli("sample", "--checkpoint", training.out / "last.pt", "--prefix", "分开",
                      "--length", 20)
        assert sampled.exit_code == 0 and sampled.stdout.startswith("分开"), sampled.output
        resume_one_more_epoch(training.out)


def kill_9(training: Training, moment: str, rng: random.Random) -> None:
    """SIGKILL once training has written a checkpoint, at `moment`; last.pt must still load."""
    training.wait_for_checkpoint()
    if moment == "as an epoch ends":
        training.wait_for_an_epoch_end()
    elif moment == "while writing last.pt":
        training.wait_for_a_write()
    else:
        time.sleep(rng.uniform(0, 0.5))
    assert training.stop(signal.SIGKILL) == -signal.SIGKILL
    assert_clean_checkpoint(training.out)


def test_kill_9_at_any_moment_leaves_a_loadable_last_pt(long_corpus, tmp_path, started):
    """A resumed run and two fresh ones, killed as an epoch ends (its checkpoint about to be
    written), at a random moment, and half-way through writing last.pt; started together, so
    they wait for Python and torch to load at the same time."""
    done = cli("train", "--out", tmp_path / "resumed", "--data", long_corpus, *FAULT_ARGS,
               "--epochs", 1)  # a run to resume
    assert done.exit_code == 0, done.output
    started += [Training(tmp_path / "resumed", "--resume", "--epochs", "1000"),
                Training.fresh(tmp_path / "fresh", long_corpus),
                Training.fresh(tmp_path / "fresh2", long_corpus)]
    rng = random.Random(9)
    moments = ["as an epoch ends", "at random", "while writing last.pt"]
    for training, moment in zip(started, moments):
        kill_9(training, moment, rng)
    for training in started:
        resume_one_more_epoch(training.out)


def test_resume_removes_the_temporary_files_of_a_killed_write(run_copy):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = run_copy / f".last.pt.{dead.pid}.tmp"
    stale.write_bytes(b"PK\x03\x04 half a checkpoint")
    resume_one_more_epoch(run_copy)
    assert not stale.exists()
