"""Training speed: the book's reference pipeline and lyricgen's presets, alternated in one run.

    python benchmarks/speed.py [--corpus ZIP] [--epochs 4] [--rounds 6] [--embedding-rounds 2]

Every figure is tokens/s, the median over epochs after the first. This machine's speed drifts
by 10-30% within minutes (other tenants), so runs are short and alternated, and each ratio is
the median of per-round ratios: runs of one round are seconds apart, so a drift hits both.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from common import DEFAULT_CORPUS, ROOT, lyricgen_train, median_speed, record, reference

EMBEDDING = ["--input", "embedding", "--hidden-size", "512", "--embedding-size", "256",
             "--num-layers", "2", "--dropout", "0", "--batch-size", "32", "--num-steps", "64",
             "--optimizer", "adam", "--lr", "0.002", "--clip", "1", "--val-fraction", "0",
             "--epochs", "3"]
RATIOS = [  # (what is compared, numerator run, denominator run)
    ("book setting, scratch vs reference scratch", "lyricgen scratch", "reference scratch"),
    ("book setting, builtin vs reference builtin", "lyricgen builtin", "reference builtin"),
    ("book setting, scratch vs builtin", "lyricgen scratch", "lyricgen builtin"),
    ("book setting, scratch on its C path vs its readable one (no compiler)", "lyricgen scratch",
     "lyricgen scratch, readable path"),
    ("embedding setting (hidden 512, embedding 256, 2 layers, batch 32, 64 steps), scratch vs "
     "builtin", "embedding scratch", "embedding builtin"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--embedding-rounds", type=int, default=2)
    args = parser.parse_args()
    data = ["--data", str(args.corpus)]

    def book(name: str, c_kernels: bool = True) -> float:
        config = str(ROOT / "configs" / f"d2l-{name}.toml")
        return median_speed(lyricgen_train(["--config", config, *data, "--epochs", str(args.epochs)],
                                           c_kernels=c_kernels))

    def embedding(backend: str) -> float:
        return median_speed(lyricgen_train([*data, "--backend", backend, *EMBEDDING]))

    book_runs = {
        "reference scratch": lambda: reference(args.corpus, "scratch", args.epochs)["tokens_per_s"],
        "lyricgen scratch": lambda: book("scratch"),
        "reference builtin": lambda: reference(args.corpus, "builtin", args.epochs)["tokens_per_s"],
        "lyricgen builtin": lambda: book("builtin"),
        "lyricgen scratch, readable path": lambda: book("scratch", c_kernels=False),
    }
    embedding_runs = {"embedding scratch": lambda: embedding("scratch"),
                      "embedding builtin": lambda: embedding("builtin")}
    speeds: dict[str, list[float]] = {}
    for runs, rounds in ((book_runs, args.rounds), (embedding_runs, args.embedding_rounds)):
        for r in range(rounds):
            for name, run in runs.items():
                speeds.setdefault(name, []).append(run())
                print(f"round {r + 1}: {name}: {speeds[name][-1]:,.0f} tokens/s", flush=True)
    lines = ["| run | tokens/s (each round) | median |", "|---|---|---|",
             *(f"| {name} | {', '.join(f'{v:,.0f}' for v in values)} | "
               f"{statistics.median(values):,.0f} |" for name, values in speeds.items()), ""]
    for what, top, bottom in RATIOS:
        if not speeds.get(bottom):  # e.g. --embedding-rounds 0
            continue
        per_round = [a / b for a, b in zip(speeds[top], speeds[bottom])]
        lines.append(f"- {what}: **{statistics.median(per_round):.2f}x** (each round: "
                     + ", ".join(f"{x:.2f}" for x in per_round) + ")")
    record("Training speed against the book's code (speed.py)",
           f"python benchmarks/speed.py --epochs {args.epochs} --rounds "
           f"{args.rounds} --embedding-rounds {args.embedding_rounds}", lines)


if __name__ == "__main__":
    main()
