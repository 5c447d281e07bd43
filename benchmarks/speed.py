"""Training speed: the book's reference pipeline and lyricgen's presets, alternated in one run.

    python benchmarks/speed.py [--corpus ZIP] [--epochs 6] [--rounds 2]

Every figure is tokens/s, the median over epochs after the first; ratios compare runs made
minutes apart on the same machine, alternated so that drifts in machine load hit both sides.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from common import DEFAULT_CORPUS, ROOT, lyricgen_train, median_speed, record, reference

EMBEDDING = ["--input", "embedding", "--hidden-size", "512", "--embedding-size", "256",
             "--num-layers", "2", "--dropout", "0", "--batch-size", "32", "--num-steps", "64",
             "--optimizer", "adam", "--lr", "0.002", "--clip", "1", "--val-fraction", "0"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    book = lambda name: ["--config", str(ROOT / "configs" / f"d2l-{name}.toml"),  # noqa: E731
                         "--data", str(args.corpus), "--epochs", str(args.epochs)]
    runs = {
        "reference scratch": lambda: reference(args.corpus, "scratch", args.epochs)["tokens_per_s"],
        "lyricgen scratch": lambda: median_speed(lyricgen_train(book("scratch"))),
        "reference builtin": lambda: reference(args.corpus, "builtin", args.epochs)["tokens_per_s"],
        "lyricgen builtin": lambda: median_speed(lyricgen_train(book("builtin"))),
        "embedding scratch": lambda: median_speed(lyricgen_train(
            ["--data", str(args.corpus), "--backend", "scratch", "--epochs", "3", *EMBEDDING])),
        "embedding builtin": lambda: median_speed(lyricgen_train(
            ["--data", str(args.corpus), "--backend", "builtin", "--epochs", "3", *EMBEDDING])),
    }
    speeds: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(args.rounds):
        for name, run in runs.items():
            speeds[name].append(run())
            print(f"round {r + 1}: {name}: {speeds[name][-1]:,.0f} tokens/s", flush=True)
    s = {name: statistics.median(v) for name, v in speeds.items()}
    lines = [
        "| run | tokens/s (each round) | median |",
        "|---|---|---|",
        *(f"| {name} | {', '.join(f'{v:,.0f}' for v in speeds[name])} | {s[name]:,.0f} |"
          for name in runs),
        "",
        f"- book setting, scratch vs reference scratch: **{s['lyricgen scratch'] / s['reference scratch']:.2f}x**",
        f"- book setting, builtin vs reference builtin: **{s['lyricgen builtin'] / s['reference builtin']:.2f}x**",
        f"- book setting, scratch vs builtin: **{s['lyricgen scratch'] / s['lyricgen builtin']:.2f}x**",
        f"- embedding setting (hidden 512, embedding 256, 2 layers, batch 32, 64 steps), "
        f"scratch vs builtin: **{s['embedding scratch'] / s['embedding builtin']:.2f}x**",
    ]
    record("Training speed", f"python benchmarks/speed.py --epochs {args.epochs} --rounds "
           f"{args.rounds}", lines)


if __name__ == "__main__":
    main()
