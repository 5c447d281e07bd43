"""The book's LSTM chapter, reproduced with the d2l presets: training perplexity at epochs
40 / 80 / 120 / 160 against the published figures and the ranges the project holds itself to.

    python benchmarks/reproduce.py [--corpus ZIP]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from common import DEFAULT_CORPUS, ROOT, lyricgen_train, record

BOOK = {"scratch": {40: 211, 80: 67, 120: 15.6, 160: 4.27}, "builtin": {40: 1.02}}
TARGETS = {"scratch": {40: (150, 260), 160: (0, 4.5)}, "builtin": {40: (0, 1.1)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()
    lines = ["| preset | epoch | train ppl | the book | target | met |",
             "|---|---|---|---|---|---|"]
    for backend in ("scratch", "builtin"):
        rows = lyricgen_train(["--config", str(ROOT / "configs" / f"d2l-{backend}.toml"),
                               "--data", str(args.corpus)])
        ppl = {r["epoch"]: r["train_ppl"] for r in rows}
        for epoch in (40, 80, 120, 160):
            low, high = TARGETS[backend].get(epoch, (None, None))
            target = f"[{low}, {high}]" if low is not None else "-"
            met = "-" if low is None else ("yes" if low <= ppl[epoch] <= high else "**no**")
            book = BOOK[backend].get(epoch, "-")
            lines.append(f"| d2l-{backend} | {epoch} | {ppl[epoch]:.2f} | {book} | {target} | "
                         f"{met} |")
    cuda = torch.cuda.is_available()  # `--device auto`: the presets then train on the GPU
    record("Reproducing the book's chapter" + (" on CUDA" if cuda else "") + " (reproduce.py)",
           "python benchmarks/reproduce.py", lines, key="reproduce" + ("-cuda" if cuda else ""))


if __name__ == "__main__":
    main()
