"""Helpers shared by the benchmark scripts: running lyricgen and the reference, recording."""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from lyricgen.config import Config
from lyricgen.data.corpus import load_corpus
from lyricgen.training.loop import Trainer
from lyricgen.training.setup import set_up
from results_page import section, write_section

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DEFAULT_CORPUS = SHARED / "data" / "jaychou_lyrics.txt.zip"
REFERENCE = SHARED / "reference" / "d2l_reference.py"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def lyricgen_train(args: list[str], timeout: float = 3600, c_kernels: bool = True
                   ) -> list[dict]:
    """Run `lyricgen train ARGS` in a fresh process; its metrics.jsonl rows. `c_kernels=False`
    runs the scratch backend on its readable path (as on a machine without a C compiler)."""
    with tempfile.TemporaryDirectory() as out:
        env = os.environ if c_kernels else {**os.environ, "CC": str(Path(out) / "no-cc"),
                                            "XDG_CACHE_HOME": str(Path(out) / "cache")}
        subprocess.run([sys.executable, "-m", "lyricgen", "train", *args, "--out", out,
                        "--preview-every", "0"], check=True, timeout=timeout, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lines = (Path(out) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def median_speed(rows: list[dict]) -> float:
    """tokens/s: the median over the epochs after the first (the first pays for warm-up)."""
    rates = [r["tokens_per_s"] for r in rows]
    return statistics.median(rates[1:] if len(rates) > 1 else rates)


def quiet_trainer(cfg: Config, out: Path) -> Trainer:
    """A Trainer writing to the new folder `out`, with no log lines and no progress bar."""
    out.mkdir()
    quiet = lambda m: None  # noqa: E731
    setup = set_up(cfg, load_corpus(cfg.data, progress=False), log=quiet)
    return Trainer(setup, out, log=quiet, progress_bar=False)


def alternate_epochs(trainers: dict, rounds: int) -> dict[object, list[float]]:
    """Train each trainer one epoch in turn, `rounds` times over, so that machine drift hits
    all alike: tokens/s of each epoch (the Trainer's own figure), by trainer. A first round
    before them warms up and is left out."""
    speeds: dict[object, list[float]] = {key: [] for key in trainers}
    for r in range(rounds + 1):
        for key, trainer in trainers.items():
            trainer.cfg.train.epochs = trainer.progress.epoch + 1  # run() trains up to it
            tokens_per_s = trainer.run().history[-1]["tokens_per_s"]
            if r:
                speeds[key].append(tokens_per_s)
    return speeds


def reference(corpus: Path, kind: str, epochs: int) -> dict:
    """The book's pipeline (shared/reference/d2l_reference.py): its JSON line."""
    done = subprocess.run([sys.executable, str(REFERENCE), str(corpus), kind, str(epochs)],
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        info = Path("/proc/cpuinfo").read_text()
        cpu = next(line.split(":", 1)[1].strip() for line in info.splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{cpu}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads{gpu}, "
            f"torch {torch.__version__}, Python {platform.python_version()}")


def record(title: str, command: str, lines: list[str], key: str | None = None) -> None:
    """Print `lines` and write them, dated, as section `key` of benchmarks/RESULTS.md, in place
    of that section's previous run (results_page.py). `key` defaults to the script's name
    (speed.py: "speed"); a script measuring variants apart passes its own."""
    text = "\n".join(lines)
    print(text)
    if key is None:
        script = Path(sys.argv[0])
        key = (script.stem if script.suffix == ".py"
               else re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-"))
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    write_section(RESULTS, key, section(key, title, stamp, command, machine(), text))
