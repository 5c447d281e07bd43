"""How fast a training step runs here, measured on the run's own model and batch shape (the
sizing rule's speed with --time-limit)."""

from __future__ import annotations

import time
from dataclasses import replace

import torch

from lyricgen.config import Config
from lyricgen.data.corpus import Corpus
from lyricgen.training.setup import set_up

WARM_UP_STEPS, PROBE_SECONDS = 2, 1.0


def measure_speed(cfg: Config, corpus: Corpus) -> float:
    """Training characters per second of `cfg`'s model here, timed on a throwaway copy: after
    WARM_UP_STEPS (kernels loaded, memory allocated and first touched), steps until about
    PROBE_SECONDS have passed (at least two, at most ten)."""
    probe = replace(cfg, model=replace(cfg.model, ngram_order=0))
    setup = set_up(probe, corpus, log=lambda message: None)
    X, Y = setup.batches(1).batch(0)
    for _ in range(WARM_UP_STEPS):
        setup.step(X, Y, None)
    _sync(setup.device)
    began, steps = time.perf_counter(), 0
    while steps < 2 or (steps < 10 and time.perf_counter() - began < PROBE_SECONDS):
        setup.step(X, Y, None)
        _sync(setup.device)
        steps += 1
    return steps * X.numel() / (time.perf_counter() - began)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
