"""Data-parallel training on this CPU: tokens/s of the default preset with one process of two
threads against two processes of one thread (torchrun, gloo), alternated; and what scaling to
expect elsewhere, on paper: the bytes all-reduced per step against the step's compute time.

    python benchmarks/distributed.py [--corpus ZIP] [--rounds 3] [--epochs 2]

Every figure is tokens/s of the last epoch (the Trainer's own, which counts the global batch).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import DEFAULT_CORPUS, record
from lyricgen.config import Config

VOCAB = 2583  # the Jay Chou corpus's characters


def tokens_per_s(corpus: Path, epochs: int, processes: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        threads = "2" if processes == 1 else "1"
        command = [sys.executable, "-m", "lyricgen", "train"]
        if processes > 1:
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       "--nproc-per-node", str(processes), "-m", "lyricgen", "train"]
        subprocess.run([*command, "--data", str(corpus), "--epochs", str(epochs), "--out", out,
                        "--patience", "0", "--device", "cpu"], check=True,
                       env={**os.environ, "OMP_NUM_THREADS": threads},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rows = [json.loads(line) for line in Path(out, "metrics.jsonl").read_text().splitlines()]
    return rows[-1]["tokens_per_s"]


def on_paper(step_seconds: float) -> list[str]:
    """Bytes each process sends per step in a ring all-reduce of the float32 gradients,
    2 (N - 1) / N x 4 P, and what that costs on a few links, against the step's compute."""
    default = Config()
    large = Config()
    large.model.hidden_size, large.model.embedding_size, large.model.num_layers = 2048, 2048, 2
    sizes = {name: cfg.model.parameter_count(VOCAB)
             for name, cfg in (("default preset (1 x 512)", default), ("2 x 2048", large))}
    lines = ["| model | parameters | MB sent per step and process (N = 8) | 10 Gb/s Ethernet | "
             "100 Gb/s InfiniBand | NVLink (~300 GB/s) |", "|---|---|---|---|---|---|"]
    for name, P in sizes.items():
        sent = 2 * 7 / 8 * 4 * P
        times = [sent / rate * 1000 for rate in (1.25e9, 12.5e9, 300e9)]
        lines.append(f"| {name} | {P / 1e6:.1f} M | {sent / 1e6:.1f} | "
                     + " | ".join(f"{t:.1f} ms" for t in times) + " |")
    ethernet = 2 * 7 / 8 * 4 * sizes["default preset (1 x 512)"] / 1.25e9
    lines += ["", f"Against this: a default-preset step (batch 32 x 64 steps) takes about "
                  f"{step_seconds * 1000:.0f} ms on this CPU (measured above, one process), "
                  f"so on CPUs its all-reduce costs {ethernet / step_seconds:.0%} of a step over "
                  "10 Gb/s Ethernet and about a tenth of that over InfiniBand. On a "
                  "GPU the same step takes milliseconds: NVLink keeps it small, but over "
                  "Ethernet or InfiniBand the default model's all-reduce is as long as its "
                  "step or longer; only larger models or batches (2 x 2048: "
                  f"{sizes['2 x 2048'] / 1e6:.0f} M parameters, far more compute per step) "
                  "scale across nodes. DDP overlaps the all-reduce "
                  "of early buckets with the rest of the backward pass, which hides part of "
                  "it."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    speeds: dict[int, list[float]] = {1: [], 2: []}
    for r in range(args.rounds):
        for processes in (1, 2):
            speeds[processes].append(tokens_per_s(args.corpus, args.epochs, processes))
            print(f"round {r + 1}: {processes} process(es): {speeds[processes][-1]:,.0f} tokens/s",
                  flush=True)
    ratios = [b / a for a, b in zip(speeds[1], speeds[2])]
    one = statistics.median(speeds[1])
    lines = ["| run | tokens/s (each round) | median |", "|---|---|---|",
             f"| 1 process x 2 threads | {', '.join(f'{x:,.0f}' for x in speeds[1])} | "
             f"{one:,.0f} |",
             f"| 2 processes x 1 thread (torchrun, gloo) | "
             f"{', '.join(f'{x:,.0f}' for x in speeds[2])} | {statistics.median(speeds[2]):,.0f} |",
             "", f"- 2 processes / 1 process: **{statistics.median(ratios):.2f}x** (each round: "
             f"{', '.join(f'{x:.2f}' for x in ratios)})", "",
             "No GPU machine was lent to this session: scaling from 1 to N GPUs is not measured. "
             "On paper:", ""]
    lines += on_paper(32 * 64 / one)
    record("Data-parallel training (distributed.py)", "python benchmarks/distributed.py "
           + " ".join(sys.argv[1:]), lines)


if __name__ == "__main__":
    main()
