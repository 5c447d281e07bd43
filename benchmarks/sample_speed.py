"""Sampling speed: characters per second for 1 and 32 streams at the book's model size and at
the default preset's, and the 32-stream figure as a share of the matmul floor.

    python benchmarks/sample_speed.py [--length 2000] [--rounds 3]

Speed does not depend on the weights, so the models are freshly initialised (the vocabulary
sizes are the shared corpus's: 1,027 characters in the book's slice, 2,583 in the whole text).
Both backends sample through the same `Stepper` (the backend runs only the warm-up on the
prefix), so one row per size. The matmul floor is the time this machine's large-matmul rate
(the best of several measurements) needs for the multiply-adds of one step. Two floors: the
model's (W_ih x for embedding input counted; a lookup for one-hot input) and the step's as run
(the embedding folded into W_ih once, so layer 0's input is a lookup too).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import record
from lyricgen.config import SampleConfig
from lyricgen.models.charlm import CharLM, ModelConfig
from lyricgen.sampler import generate

SIZES = {  # name: (vocab size, model settings)
    "book (one-hot, 1 x 256)": (1027, ModelConfig(input="onehot", hidden_size=256,
                                                  num_layers=1, dropout=0.0)),
    "default preset": (2583, ModelConfig()),
}


def chars_per_second(model: CharLM, streams: int, length: int) -> float:
    cfg = SampleConfig(length=length, num_samples=streams, temperature=1.0, candidates=1)
    generator = torch.Generator().manual_seed(0)
    generate(model, [0, 1, 2], SampleConfig(length=20, num_samples=streams, candidates=1),
             generator)  # warm-up
    start = time.perf_counter()
    generate(model, [0, 1, 2], cfg, generator)
    return streams * length / (time.perf_counter() - start)


def flops_per_char(vocab: int, cfg: ModelConfig, folded: bool) -> float:
    H, total = cfg.hidden_size, 0.0
    for k in range(cfg.num_layers):
        lookup = k == 0 and (cfg.input == "onehot" or folded)
        layer_in = 0 if lookup else (cfg.embedding_size if k == 0 else H)
        total += 2 * 4 * H * (layer_in + H)
    return total + 2 * H * vocab


def matmul_rate(repeats: int = 5) -> float:
    """FLOP/s of a 1024 x 1024 matmul: the best of `repeats` timings of 20."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(20):
            a @ b
        best = min(best, time.perf_counter() - start)
    return 20 * 2 * 1024 ** 3 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rate = matmul_rate()
    lines = [f"large-matmul rate measured here: {rate / 1e9:.0f} GFLOP/s; chars/s are the "
             f"median of {args.rounds} rounds", "",
             "| model | 1 stream chars/s | 32 streams chars/s | 32 streams vs the model's "
             "floor | vs the floor as run |", "|---|---|---|---|---|"]
    for name, (vocab, cfg) in SIZES.items():
        torch.manual_seed(0)
        model = CharLM(vocab, cfg).eval()
        one, many = [], []
        for _ in range(args.rounds):
            one.append(chars_per_second(model, 1, args.length))
            many.append(chars_per_second(model, 32, args.length // 4))
        one, many = statistics.median(one), statistics.median(many)
        floors = [rate / flops_per_char(vocab, cfg, folded) for folded in (False, True)]
        lines.append(f"| {name} | {one:,.0f} | {many:,.0f} | "
                     + " | ".join(f"{100 * many / f:.0f}% of {f:,.0f}" for f in floors) + " |")
    record("Sampling speed (sample_speed.py)",
           f"python benchmarks/sample_speed.py --length {args.length} "
           f"--rounds {args.rounds}", lines)


if __name__ == "__main__":
    main()
