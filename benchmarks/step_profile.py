"""Where a training step of the default model goes, and what that allows its FLOP efficiency.

    python benchmarks/step_profile.py [--corpus ZIP] [--matmul bfloat16|float32] [--steps 20]

Runs the default preset's training steps on the lyrics (after a warm-up epoch) under torch's
profiler, and splits their time into the recurrent products (one (B, H) x (H, 4H) product per
time step, forward and backward: `aten::addmm_`), the large products (input projection,
output layer, weight gradients: `aten::mm`, `aten::addmm`) and everything else. From the
split it bounds the efficiency the step could reach against a 2048^3 matmul of the same
precision: with everything but the products taking no time, and with the recurrent products
as fast as the large ones.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from common import DEFAULT_CORPUS, quiet_trainer, record
from corpora import flops_per_char, matmul_rate

from lyricgen.presets import load_config

RECURRENT, LARGE = {"aten::addmm_"}, {"aten::mm", "aten::addmm"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--matmul", choices=("bfloat16", "float32"), default="bfloat16")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = quiet_trainer(load_config(None, {
            "data": str(args.corpus), "matmul": args.matmul, "epochs": 1, "patience": 0,
            "preview_every": 0}), Path(tmp) / "run")
        trainer.run()  # a warm-up epoch: oneDNN's kernels made, the buffers allocated
        s = trainer.setup
        batches = s.batches(2)
        s.model.train()
        hidden = None
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(args.steps):
                X, Y = batches.batch(i % len(batches))  # (B, T) each
                hidden = None if hidden is None else tuple(h.detach() for h in hidden)
                _, hidden = s.step(X, Y, hidden)
        B, T = X.shape
        vocab = len(s.corpus.vocab)
    per_step = {"recurrent": 0.0, "large": 0.0, "other": 0.0}
    for event in prof.key_averages():
        kind = "recurrent" if event.key in RECURRENT else "large" if event.key in LARGE \
            else "other"
        per_step[kind] += event.self_cpu_time_total / 1e6 / args.steps  # seconds
    step = sum(per_step.values())
    flops = flops_per_char(vocab) * B * T  # per step
    recurrent_flops = 2 * 2 * B * T * 512 * 2048  # forward and dh; dW is a large product
    rate = matmul_rate(bfloat16=args.matmul == "bfloat16")
    large_rate = (flops - recurrent_flops) / per_step["large"]
    lines = [f"{args.steps} steps of {B} x {T} characters, vocabulary {vocab}, {args.matmul} "
             f"products; a 2048^3 matmul here: {rate / 1e9:.0f} GFLOP/s.", "",
             "| part | ms per step | share |", "|---|---|---|"]
    lines += [f"| {kind} | {seconds * 1e3:.1f} | {seconds / step:.0%} |"
              for kind, seconds in per_step.items()]
    lines += ["", f"- The step (profiled): {step * 1e3:.1f} ms, {flops / step / 1e9:.0f} GFLOP/s, "
              f"**{flops / step / rate:.0%}** of the matmul's rate.",
              f"- The large products run at {large_rate / 1e9:.0f} GFLOP/s; the recurrent ones "
              f"at {recurrent_flops / per_step['recurrent'] / 1e9:.0f}.",
              f"- Bound with nothing but the products: "
              f"**{flops / (per_step['recurrent'] + per_step['large']) / rate:.0%}**; with the "
              f"recurrent products as fast as the large ones too: "
              f"**{large_rate / rate:.0%}**."]
    record("Where a training step goes (step_profile.py)", "python benchmarks/step_profile.py "
           + " ".join(sys.argv[1:]), lines)


if __name__ == "__main__":
    main()
