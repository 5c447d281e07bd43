"""Training with float32 products against bfloat16 products (`--matmul`, training/precision.py)
in one process: the default model on the lyrics (the settings the sizing rule keeps there),
the two trainers alternated epoch by epoch from the same initial weights and batches, so that
machine drift hits both alike.

    python benchmarks/precision.py [--corpus ZIP] [--epochs 12]

Prints each epoch's held-out figures for both (validation multiplies in float32 for both),
their median training speeds and the ratio of the per-round speeds, and the FLOP efficiency of
each against a 2048 x 2048 matmul of the same precision measured in the same process
(corpora.py's count of the model's FLOPs).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from common import DEFAULT_CORPUS, quiet_trainer, record
from corpora import flops_per_char, matmul_rate

from lyricgen.presets import load_config
from lyricgen.training import precision

KINDS = ("float32", "bfloat16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    if not precision.supported():
        raise SystemExit(f"torch {torch.__version__} cannot round CPU matmuls to bfloat16")
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {kind: quiet_trainer(load_config(None, {
            "data": str(args.corpus), "matmul": kind, "patience": 0, "preview_every": 0}),
            Path(tmp) / kind) for kind in KINDS}
        histories = {}
        # Each trainer draws its dropout masks from its own copy of torch's random stream, as
        # it would alone: then only the products differ.
        streams = {kind: torch.get_rng_state() for kind in KINDS}
        for epoch in range(1, args.epochs + 1):  # alternated: drift hits both alike
            for kind, trainer in trainers.items():
                torch.set_rng_state(streams[kind])
                trainer.cfg.train.epochs = epoch
                histories[kind] = trainer.run().history
                streams[kind] = torch.get_rng_state()
        vocab = len(trainers["float32"].setup.corpus.vocab)
    lines = ["| epoch | float32: val ppl plain (LSTM alone) | bfloat16: val ppl plain "
             "(LSTM alone) | train ppl float32 / bfloat16 |", "|---|---|---|---|"]
    for rows in zip(*histories.values()):
        a, b = rows
        lines.append(f"| {a['epoch']} | {a['val_ppl_plain']:.2f} ({a['val_ppl_lstm']:.2f}) | "
                     f"{b['val_ppl_plain']:.2f} ({b['val_ppl_lstm']:.2f}) | "
                     f"{a['train_ppl']:.2f} / {b['train_ppl']:.2f} |")
    speeds = {kind: [r["tokens_per_s"] for r in h[1:]] for kind, h in histories.items()}
    ratio = statistics.median(b / a for a, b in zip(*speeds.values()))
    lines += ["", f"Training speed, median over epochs 2-{args.epochs}: "
              + ", ".join(f"{kind} {statistics.median(s):,.0f} tokens/s" for kind, s in
                          speeds.items())
              + f"; bfloat16 / float32 per round: **{ratio:.2f}x**", "",
              "FLOP efficiency (the model's training FLOP/s over a 2048^3 matmul's rate, "
              "each in its own precision, measured after training):"]
    for kind, s in speeds.items():
        flops = statistics.median(s) * flops_per_char(vocab)
        rate = matmul_rate(bfloat16=kind == "bfloat16")
        lines.append(f"- {kind}: {flops / 1e9:.0f} GFLOP/s against {rate / 1e9:.0f}: "
                     f"**{flops / rate:.0%}**")
    record("Training matmul precision (precision.py)", "python benchmarks/precision.py "
           + " ".join(sys.argv[1:]), lines)


if __name__ == "__main__":
    main()
