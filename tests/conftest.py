"""Shared fixtures and helpers: generated corpora (never real lyrics), a small trained run, the
tiny settings, and how a command-line error must look."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lyricgen.cli import app
from lyricgen.commands.train import train

# The test models are tiny: one thread avoids OpenMP start-up and contention costs.
torch.set_num_threads(1)

# Invented lines; the generator below strings them into songs with a fixed seed.
WORDS = ["分开", "不分开", "月光", "窗外", "雨下", "风吹", "我们", "你的", "微笑", "回忆",
         "走过", "街角", "心跳", "永远", "城市", "夜晚", "慢慢", "想念", "天空", "海边"]


def lyrics(num_lines: int = 300, seed: int = 0) -> str:
    """Song-like text: short lines of invented two-character words, a refrain that repeats."""
    rng = random.Random(seed)
    refrain = ["".join(rng.choice(WORDS) for _ in range(3)) for _ in range(2)]
    lines = []
    for n in range(num_lines):
        lines.append(refrain[n % 2] if n % 5 == 4 else
                     "".join(rng.choice(WORDS) for _ in range(rng.randint(2, 4))))
    return "\n".join(lines) + "\n"


@pytest.fixture
def lyrics_file(tmp_path: Path) -> Path:
    path = tmp_path / "lyrics.txt"
    path.write_text(lyrics(), encoding="utf-8")
    return path


# Small and fast, and pinned: the tests do not follow the quality preset's defaults.
TINY = {"hidden_size": 32, "embedding_size": 16, "num_layers": 1, "dropout": 0.0,
        "embedding_dropout": 0.0, "tie_weights": False, "num_steps": 16, "batch_size": 8,
        "optimizer": "adam", "lr": 0.01, "weight_decay": 0.0, "lr_schedule": "none",
        "patience": 0, "cache_eval": False, "epochs": 2,
        # The suite's figures are CPU figures (exact resume, float32 tolerances, the C kernels'
        # note), also on a machine with CUDA; benchmarks/gpu.py checks the CUDA path. Float32
        # products on every CPU, with AMX or without (test_precision.py tests the others).
        "device": "cpu", "matmul": "float32"}


def cli_args(options: dict) -> list[str]:
    """The command-line form of flat options (as commands.train takes them)."""
    args = []
    for key, value in options.items():
        flag = key.replace("_", "-")
        args += [f"--{flag}" if value else f"--no-{flag}"] if isinstance(value, bool) else \
            [f"--{flag}", str(value)]
    return args


def tiny_options(data: Path, out: Path, **extra) -> dict:
    """Options for a small, fast training run (the flat keys the CLI passes to commands.train)."""
    return {"data": str(data), "out": str(out), **TINY, **extra}


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Path:
    """The output folder of a small finished run (best.pt, last.pt, metrics.jsonl)."""
    root = tmp_path_factory.mktemp("trained")
    data = root / "lyrics.txt"
    data.write_text(lyrics(), encoding="utf-8")
    train(None, tiny_options(data, root / "run", epochs=3), **QUIET)
    return root / "run"


QUIET = dict(log=lambda m: None, progress_bar=False)
TIMINGS = ("seconds", "tokens_per_s", "val_seconds")  # metrics that differ from run to run


def without_timings(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in rows]


def cli(*args):
    """`lyricgen ARGS` in this process (arguments may be paths or numbers)."""
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_one_line_error(result, code: int, *phrases: str, stdout: str | None = None) -> None:
    """Exit `code`, stderr exactly one line `error: ...` holding every phrase, no traceback
    (and, when given, exactly `stdout` on stdout)."""
    assert result.exit_code == code, result.output
    if stdout is not None:
        assert result.stdout == stdout
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)  # an exception escaping the CLI would be a traceback
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    assert "Traceback" not in result.output
