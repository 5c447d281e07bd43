"""`lyricgen sample`: a checkpoint and prefixes in, texts out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from lyricgen import checkpoint
from lyricgen.config import SampleConfig
from lyricgen.device import resolve_device
from lyricgen.errors import UsageError
from lyricgen.models import BACKENDS
from lyricgen.sampler import generate, start_ids
from lyricgen.vocab import UnknownCharsError, UnknownPolicy

Stream = Callable[..., None]


def sample(path: Path, prefixes: list[str], cfg: SampleConfig, *,
           backend: str | None = None, device: str = "auto", unknown: UnknownPolicy = "error",
           warn: Callable[[str], None] = print, stream: Stream | None = None
           ) -> list[dict[str, Any]]:
    """`cfg.num_samples` continuations of each prefix. With `stream`, each character is passed
    to it as it is made (for a terminal; meant for one sample per prefix)."""
    cfg.validate()
    if backend is not None and backend not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    dev = resolve_device(device)
    saved = checkpoint.load(path)
    model, vocab = saved.build_model(backend).to(dev), saved.vocab
    generator = torch.Generator(dev)
    if cfg.seed is not None:
        generator.manual_seed(cfg.seed)
    else:
        generator.seed()
    settings = {**asdict(cfg), "seed": generator.initial_seed(), "checkpoint": str(path),
                "backend": backend or saved.config.model.backend}
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
