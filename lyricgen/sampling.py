"""`lyricgen sample`: a checkpoint and prefixes in, texts out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from lyricgen.checkpoint import load_checkpoint, model_from_checkpoint
from lyricgen.config import SampleConfig
from lyricgen.device import resolve_device
from lyricgen.errors import UsageError
from lyricgen.generate import generate, start_ids
from lyricgen.models import BACKENDS
from lyricgen.vocab import UnknownCharsError, UnknownPolicy

Stream = Callable[..., None]


def sample(checkpoint: Path, prefixes: list[str], cfg: SampleConfig, *,
           backend: str | None = None, device: str = "auto", unknown: UnknownPolicy = "error",
           warn: Callable[[str], None] = print, stream: Stream | None = None
           ) -> list[dict[str, Any]]:
    """`cfg.num_samples` continuations of each prefix. With `stream`, each character is passed
    to it as it is made (for a terminal; meant for one sample per prefix)."""
    cfg.validate()
    if backend is not None and backend not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    dev = resolve_device(device)
    model, vocab, config = model_from_checkpoint(load_checkpoint(checkpoint), str(checkpoint),
                                                 backend)
    model.to(dev)
    generator = torch.Generator(dev)
    if cfg.seed is not None:
        generator.manual_seed(cfg.seed)
    else:
        generator.seed()
    settings = {**asdict(cfg), "seed": generator.initial_seed(), "checkpoint": str(checkpoint),
                "backend": config.model.backend}
    results = []
    for prefix in prefixes:
        try:
            ids, used = start_ids(vocab, prefix, unknown, generator)
        except UnknownCharsError as e:
            raise UsageError(f"prefix {prefix!r}: {e}; use --unknown skip to drop them") from None
        if unknown == "skip" and vocab.unknown(prefix):
            warn(f"prefix {prefix!r}: skipped characters not in the vocabulary: "
                 + ", ".join(map(repr, vocab.unknown(prefix))))
        on_step = None
        if stream is not None:
            stream(used)
            on_step = lambda ids: stream(vocab.chars[int(ids[0])])  # noqa: E731
        samples = generate(model, ids, cfg, generator, on_step)
        if stream is not None:
            stream("", end=True)
        results += [{"prefix": prefix, "prefix_used": used, "sample": k,
                     "text": vocab.decode(s), "settings": settings}
                    for k, s in enumerate(samples)]
    return results
