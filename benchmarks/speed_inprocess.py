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

from common import DEFAULT_CORPUS, ROOT, alternate_epochs, quiet_trainer, record

from lyricgen.presets import load_config

RATIOS = [("scratch vs builtin", "scratch", "builtin"),
          ("scratch on its C path vs its readable one", "scratch", "scratch, readable path")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {}
        for i, (name, backend) in enumerate((("scratch", "scratch"),
                                             ("scratch, readable path", "scratch"),
                                             ("builtin", "builtin"))):
            cfg = load_config(ROOT / "configs" / f"d2l-{backend}.toml",
                              {"data": str(args.corpus), "preview_every": 0})
            trainers[name] = quiet_trainer(cfg, Path(tmp) / str(i))
        trainers["scratch, readable path"].setup.model.rnn.fast = False
        speeds = alternate_epochs(trainers, args.rounds)
    lines = ["| run | tokens/s, median of rounds (range) |", "|---|---|",
             *(f"| {name} | {statistics.median(v):,.0f} ({min(v):,.0f}-{max(v):,.0f}) |"
               for name, v in speeds.items()), ""]
    for what, top, bottom in RATIOS:
        per_round = sorted(a / b for a, b in zip(speeds[top], speeds[bottom]))
        lines.append(f"- {what}: **{statistics.median(per_round):.2f}x** (rounds from "
                     f"{per_round[0]:.2f} to {per_round[-1]:.2f})")
    record("Training speed in one process (speed_inprocess.py)",
           f"python benchmarks/speed_inprocess.py --rounds {args.rounds}", lines)


if __name__ == "__main__":
    main()
