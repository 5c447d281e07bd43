"""Training speed at the book's setting in one process: lyricgen's trainers alternated epoch by
epoch, so machine drift hits all of them alike (speed.py's fresh processes with short runs
are noisier). Compares the scratch backend with its C step kernels, the same without them
(PyTorch ops), and builtin.

    python benchmarks/speed_inprocess.py [--corpus ZIP] [--rounds 20]

Every figure is tokens/s of one epoch (the Trainer's own metrics), the first epoch of each
trainer left out; ratios are the medians of per-round ratios.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from common import DEFAULT_CORPUS, ROOT, record

from lyricgen.config import load_config
from lyricgen.corpus import load_corpus
from lyricgen.train import Trainer

RATIOS = [("scratch vs builtin", "scratch", "builtin"),
          ("scratch with its C step kernels vs without", "scratch", "scratch, no C kernels")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {}
        for name, backend in (("scratch", "scratch"), ("scratch, no C kernels", "scratch"),
                              ("builtin", "builtin")):
            cfg = load_config(ROOT / "configs" / f"d2l-{backend}.toml",
                              {"data": str(args.corpus), "preview_every": 0, "epochs": 1})
            out = Path(tmp) / name.replace(",", "").replace(" ", "-")
            out.mkdir()
            trainers[name] = Trainer(cfg, load_corpus(cfg.data, progress=False), out,
                                     log=lambda m: None, progress_bar=False)
        trainers["scratch, no C kernels"].model.rnn.native = False
        speeds: dict[str, list[float]] = {name: [] for name in trainers}
        for r in range(args.rounds + 1):
            for name, trainer in trainers.items():
                tokens_per_s = trainer.run().history[-1]["tokens_per_s"]
                trainer.cfg.train.epochs += 1  # run() trains the epochs not yet done: one
                if r:  # round 0 warms up
                    speeds[name].append(tokens_per_s)
    lines = ["| run | tokens/s, median of rounds (range) |", "|---|---|",
             *(f"| {name} | {statistics.median(v):,.0f} ({min(v):,.0f}-{max(v):,.0f}) |"
               for name, v in speeds.items()), ""]
    for what, top, bottom in RATIOS:
        per_round = sorted(a / b for a, b in zip(speeds[top], speeds[bottom]))
        lines.append(f"- {what}: **{statistics.median(per_round):.2f}x** (rounds from "
                     f"{per_round[0]:.2f} to {per_round[-1]:.2f})")
    record("Training speed in one process", f"python benchmarks/speed_inprocess.py --rounds "
           f"{args.rounds}", lines)


if __name__ == "__main__":
    main()
