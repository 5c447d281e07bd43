"""Memory on a large corpus: a generated 100 MB UTF-8 text (Chinese lines) through
`lyricgen data info` and a short `lyricgen train`; peak resident memory of each process.

    python benchmarks/large_corpus.py [--megabytes 100]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from common import record

# Invented text: lines of characters drawn from the CJK block (nothing copied from anywhere).
MEASURE = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
           "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def write_text(path: Path, megabytes: int) -> int:
    rng = random.Random(0)
    alphabet = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    line = lambda: "".join(rng.choices(alphabet, k=rng.randint(6, 14))) + "\n"  # noqa: E731
    block = "".join(line() for _ in range(20_000))  # repeated blocks: generation stays quick
    with path.open("w", encoding="utf-8") as f:
        while f.tell() < megabytes * 1_000_000:
            f.write(block)
    return path.stat().st_size


def peak_mb(args: list[str]) -> float:
    out = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, "-m", "lyricgen", *args],
                         check=True, capture_output=True, text=True).stdout
    return int(out.strip()) / 1024  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "big.txt"
        size = write_text(text, args.megabytes)
        info = peak_mb(["data", "info", "--data", str(text), "--json"])
        train = peak_mb(["train", "--data", str(text), "--out", str(Path(tmp) / "run"),
                         "--hidden-size", "64", "--embedding-size", "32", "--num-layers", "1",
                         "--epochs", "1", "--time-limit", "0.5", "--val-fraction", "0.001",
                         "--preview-every", "0"])
    lines = [f"text: {size / 1e6:.0f} MB of UTF-8 ({size // 3 / 1e6:.0f} M characters)", "",
             "| command | peak resident memory |", "|---|---|",
             f"| lyricgen data info | {info:,.0f} MB |",
             f"| lyricgen train (30 s, small model) | {train:,.0f} MB |"]
    record("Peak memory on a large corpus (large_corpus.py)",
           f"python benchmarks/large_corpus.py --megabytes {args.megabytes}", lines)


if __name__ == "__main__":
    main()
