"""Where a training step of the default model goes, and what that allows its FLOP efficiency.

    python benchmarks/step_profile.py [--corpus ZIP] [--matmul bfloat16|float32] [--steps 20]

Runs the default preset's training steps on the lyrics (after a warm-up epoch), timed, then
again under torch's profiler, and splits the step's time into the recurrent products (one
(B, H) x (H, 4H) product per time step, forward and backward), the large products (input
projection, output layer, weight gradients: B x T rows), both as the profiler times them, and
everything else (the profiler's own cost falls on the many small operations, so the rest is
the unprofiled step less the products). From the split it bounds the efficiency the step
could reach against a 2048^3 matmul of the same precision: with everything but the products
taking no time, and with the recurrent products as fast as the large ones too.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from common import DEFAULT_CORPUS, quiet_trainer, record
from corpora import flops_per_char, matmul_rate

from lyricgen.presets import load_config

PRODUCTS = {"aten::mm", "aten::addmm", "aten::addmm_"}


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

        def steps() -> tuple[int, int]:
            hidden = None
            for i in range(args.steps):
                X, Y = batches.batch(i % len(batches))  # (B, T) each
                hidden = None if hidden is None else tuple(h.detach() for h in hidden)
                loss, hidden = s.step(X, Y, hidden)
            loss.item()
            return X.shape

        began = time.perf_counter()
        B, T = steps()
        step = (time.perf_counter() - began) / args.steps
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            steps()
        vocab, m = len(s.corpus.vocab), trainer.cfg.model
    per_step = {"recurrent": 0.0, "large": 0.0}
    for event in prof.key_averages(group_by_input_shape=True):
        if event.key in PRODUCTS:  # a recurrent product's first operand has the batch's B rows
            kind = "recurrent" if event.input_shapes[0][:1] == [B] else "large"
            per_step[kind] += event.self_cpu_time_total / 1e6 / args.steps  # seconds
    per_step["other"] = step - per_step["recurrent"] - per_step["large"]
    H = m.hidden_size
    flops = flops_per_char(vocab, H, m.embedding_size) * B * T  # per step
    recurrent_flops = 2 * 2 * B * T * H * 4 * H  # forward and dh; dW is a large product
    rate = matmul_rate(bfloat16=args.matmul == "bfloat16")
    large_rate = (flops - recurrent_flops) / per_step["large"]
    lines = [f"{args.steps} steps of {B} x {T} characters, vocabulary {vocab}, {args.matmul} "
             f"products; a 2048^3 matmul here: {rate / 1e9:.0f} GFLOP/s.", "",
             "| part | ms per step | share |", "|---|---|---|"]
    lines += [f"| {kind} | {seconds * 1e3:.1f} | {seconds / step:.0%} |"
              for kind, seconds in per_step.items()]
    lines += ["", f"- The step (timed without the profiler): {step * 1e3:.1f} ms, "
              f"{flops / step / 1e9:.0f} GFLOP/s, **{flops / step / rate:.0%}** of the matmul's "
              "rate.",
              f"- The large products run at {large_rate / 1e9:.0f} GFLOP/s; the recurrent ones "
              f"at {recurrent_flops / per_step['recurrent'] / 1e9:.0f}.",
              f"- Bound with nothing but the products: "
              f"**{flops / (per_step['recurrent'] + per_step['large']) / rate:.0%}**; with the "
              f"recurrent products as fast as the large ones too: "
              f"**{large_rate / rate:.0%}**."]
    float32 = args.matmul == "float32"
    record("Where a training step goes" + (", float32 products" if float32 else "")
           + " (step_profile.py)", "python benchmarks/step_profile.py " + " ".join(sys.argv[1:]),
           lines, key="step_profile" + ("-float32" if float32 else ""))


if __name__ == "__main__":
    main()
