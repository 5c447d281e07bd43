"""Sampling speed: characters per second for 1 and 32 streams, both backends, at the book's
model size and at the default preset's, and the 32-stream figure as a share of the matmul floor.

    python benchmarks/sample_speed.py [--length 2000]

Speed does not depend on the weights, so the models are freshly initialised (the vocabulary
sizes are the shared corpus's: 1,027 characters in the book's slice, 2,583 in the whole text).
The matmul floor is the time this machine's large-matmul rate (measured here) needs for the
multiply-adds of one step: W_ih x (a lookup for one-hot input), W_hh h and the output layer.
"""

from __future__ import annotations

import argparse
import time

import torch

from common import record
from lyricgen.config import ModelConfig, SampleConfig
from lyricgen.generate import generate
from lyricgen.models.lm import CharLM

SIZES = {  # name: (vocab size, model settings)
    "book (one-hot, 1 x 256)": (1027, ModelConfig(input="onehot", hidden_size=256,
                                                  num_layers=1, dropout=0.0)),
    "default preset": (2583, ModelConfig()),
}


def chars_per_second(model: CharLM, streams: int, length: int) -> float:
    cfg = SampleConfig(length=length, num_samples=streams, temperature=1.0)
    generator = torch.Generator().manual_seed(0)
    generate(model, [0, 1, 2], SampleConfig(length=20, num_samples=streams), generator)  # warm-up
    start = time.perf_counter()
    generate(model, [0, 1, 2], cfg, generator)
    return streams * length / (time.perf_counter() - start)


def flops_per_char(vocab: int, cfg: ModelConfig) -> float:
    H, total = cfg.hidden_size, 0.0
    for k in range(cfg.num_layers):
        layer_in = 0 if (k == 0 and cfg.input == "onehot") else (
            cfg.embedding_size if k == 0 else H)
        total += 2 * 4 * H * (layer_in + H)
    return total + 2 * H * vocab


def matmul_rate() -> float:
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    start, n = time.perf_counter(), 20
    for _ in range(n):
        a @ b
    return n * 2 * 1024 ** 3 / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=2000)
    args = parser.parse_args()
    rate = matmul_rate()
    lines = [f"large-matmul rate measured here: {rate / 1e9:.0f} GFLOP/s", "",
             "| model | backend | 1 stream chars/s | 32 streams chars/s | 32 streams vs floor |",
             "|---|---|---|---|---|"]
    for name, (vocab, cfg) in SIZES.items():
        floor = rate / flops_per_char(vocab, cfg)  # chars/s if only the matmuls took time
        for backend in ("scratch", "builtin"):
            torch.manual_seed(0)
            model = CharLM(vocab, ModelConfig(**{**vars(cfg), "backend": backend})).eval()
            one = chars_per_second(model, 1, args.length)
            many = chars_per_second(model, 32, args.length // 4)
            lines.append(f"| {name} | {backend} | {one:,.0f} | {many:,.0f} | "
                         f"{100 * many / floor:.0f}% of {floor:,.0f} |")
    record("Sampling speed", f"python benchmarks/sample_speed.py --length {args.length}", lines)


if __name__ == "__main__":
    main()
