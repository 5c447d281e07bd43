"""Training on several processes (torchrun, gloo, the CPU): two processes with a global batch
learn what one process learns, a two-process run stopped and resumed equals an unbroken one,
its checkpoint resumes in one process, a signal to the launcher stops every process with
last.pt saved, and a process that dies ends the others with one clear error."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from conftest import cli, lyrics
from lyricgen import checkpoint

FLOAT64 = str(Path(__file__).with_name("float64_lyricgen.py"))  # lyricgen in float64
TIMEOUT = 120  # seconds; reached only when something is wrong
# Tiny, without dropout (each process draws its own masks), validation plain.
ARGS = ["--hidden-size", "24", "--embedding-size", "8", "--num-layers", "2", "--dropout", "0",
        "--embedding-dropout", "0", "--num-steps", "12", "--batch-size", "8", "--optimizer",
        "adam", "--lr", "0.01", "--no-cache-eval", "--device", "cpu", "--preview-every", "0"]


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE",
                                                                "LOCAL_RANK", "LYRICGEN_DEBUG")}
    return {**clean, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
            "2", *args]


def run(command: list[str], cwd: Path, tries: int = 1) -> subprocess.CompletedProcess:
    for _ in range(tries):
        done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env(),
                              timeout=TIMEOUT)
        if done.returncode == 0:
            return done
        warnings.warn(f"{' '.join(command[:4])} ... failed: {done.stderr[-3000:]}")
    raise AssertionError(done.stderr[-3000:])


def train(cwd: Path, out: str, *extra: str, processes: int = 1) -> None:
    args = [FLOAT64, "train", "--data", "lyrics.txt", "--out", out, *ARGS, *extra]
    # A second try for two processes: about once in 20 suites (never when run alone) a
    # two-process run failed at once on this 2-core machine, cause not found; the failure is
    # shown as a warning, and a failure twice fails the test.
    run(torchrun(*args) if processes == 2 else [sys.executable, *args], cwd, tries=processes)


def assert_same(a: Path, b: Path, tol: float = 1e-12) -> None:
    """The same weights (to `tol`) and the same metrics, epoch by epoch."""
    ca = checkpoint.load(a / "last.pt", training_state=True)
    cb = checkpoint.load(b / "last.pt", training_state=True)
    assert ca.model["rnn.weight_hh_l0"].dtype == torch.float64
    assert max((ca.model[k] - cb.model[k]).abs().max().item() for k in ca.model) <= tol
    assert [r["epoch"] for r in ca.history] == [r["epoch"] for r in cb.history]
    for ra, rb in zip(ca.history, cb.history):
        for key in ("train_ppl", "val_ppl"):
            assert ra[key] == pytest.approx(rb[key], rel=tol)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """One process and two, the same settings, three epochs: adjacent batches on the scratch
    backend (`one`, `two`), random batches on the builtin one (`one-random`, `two-random`)."""
    root = tmp_path_factory.mktemp("distributed")
    (root / "lyrics.txt").write_text(lyrics(), encoding="utf-8")
    for processes in (1, 2):
        name = "one" if processes == 1 else "two"
        train(root, name, "--epochs", "3", processes=processes)
        train(root, f"{name}-random", "--epochs", "3", "--backend", "builtin", "--sampling",
              "random", processes=processes)
    return root


@pytest.mark.parametrize("run", ["", "-random"])
def test_two_processes_learn_what_one_learns_with_the_same_global_batch(runs, run):
    assert_same(runs / f"one{run}", runs / f"two{run}")
    assert sorted(p.name for p in (runs / f"two{run}").iterdir()) == \
        ["best.pt", "last.pt", "metrics.jsonl"]  # rank 0 alone wrote, and left no lock


def test_a_two_process_run_stopped_mid_epoch_resumes_exactly_on_two_or_on_one(runs):
    # A time limit already over after the first batch: every process stops there.
    train(runs, "stopped", "--epochs", "3", "--time-limit", "1e-9", processes=2)
    progress = checkpoint.load(runs / "stopped" / "last.pt", training_state=True).progress
    assert (progress.epoch, progress.batch) == (0, 1)
    assert progress.hidden[0].shape[1] == 8  # the global batch's carried state, all rows
    shutil.copytree(runs / "stopped", runs / "stopped-one")
    train(runs, "stopped", "--epochs", "3", "--resume", processes=2)
    assert_same(runs / "two", runs / "stopped")
    train(runs, "stopped-one", "--epochs", "3", "--resume", processes=1)
    assert_same(runs / "one", runs / "stopped-one")


def test_a_signal_to_the_launcher_stops_every_process_with_last_pt_saved(runs):
    long = runs / "long.txt"
    long.write_text(lyrics(num_lines=1000, seed=3), encoding="utf-8")
    launcher = subprocess.Popen(
        torchrun("-m", "lyricgen", "train", "--data", str(long), "--out", "signalled", *ARGS,
                 "--epochs", "1000"), cwd=runs, env=env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (runs / "signalled" / "last.pt").exists(), launcher)
        launcher.send_signal(signal.SIGTERM)
        out, _ = launcher.communicate(timeout=TIMEOUT)
    finally:
        launcher.kill()
    assert "interrupted by SIGTERM" in out and "--resume" in out
    saved = checkpoint.load(runs / "signalled" / "last.pt", training_state=True)
    assert len(saved.history) == saved.progress.epoch >= 1
    assert sorted(p.name for p in (runs / "signalled").iterdir()) == \
        ["best.pt", "last.pt", "metrics.jsonl"]


def test_a_process_that_dies_ends_the_others_with_one_clear_error(runs):
    """Two processes started as torchrun starts them (without its agent, which would kill
    the other at once): one is killed, the other ends with one error line, soon."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    processes = []
    for rank in range(2):
        rank_env = {**env(), "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
                    "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "lyricgen", "train", "--data", "lyrics.txt", "--out",
             "killed", *ARGS, "--epochs", "1000"], cwd=runs, env=rank_env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    try:
        wait_for(lambda: (runs / "killed" / "last.pt").exists(), processes[0])
        processes[1].kill()
        killed_at = time.monotonic()
        _, err = processes[0].communicate(timeout=TIMEOUT)
        assert time.monotonic() - killed_at < 60
    finally:
        for p in processes:
            p.kill()
            p.wait()
    assert processes[0].returncode == 1
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: process 0 of 2 lost the other "
                                                   "processes of the run"), err
    checkpoint.load(runs / "killed" / "last.pt", training_state=True)  # still whole


def wait_for(condition, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert process.poll() is None, "the run ended early"
        assert time.monotonic() < deadline, f"nothing after {TIMEOUT} s"
        time.sleep(0.02)


@pytest.mark.parametrize("rank, args, code, said", [
    ("0", ["--epochs", "0"], 2, "error: --epochs must be at least 1"),
    ("1", ["--epochs", "0"], 2, ""),  # the same for every process: rank 0 says it
    ("1", ["--out", "{tmp}/afile/run"], 1, "error (rank 1): --out "),
])
def test_under_torchrun_a_usage_error_is_said_once_and_others_name_their_process(
        tmp_path, monkeypatch, rank, args, code, said):
    (tmp_path / "afile").write_bytes(b"x")
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("LOCAL_RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "2")
    data = tmp_path / "lyrics.txt"
    data.write_text(lyrics(), encoding="utf-8")
    result = cli("train", "--data", data, "--out", tmp_path / "run",
                 *[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == code
    lines = result.stderr.splitlines()
    assert (len(lines) == 1 and lines[0].startswith(said)) if said else lines == []
