"""`lyricgen data fetch` and `lyricgen data info`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lyricgen.data import corpus, datasets
from lyricgen.config import Config
from lyricgen.presets import naming_sources
from lyricgen.errors import UsageError


def fetch(name: str) -> Path:
    """Download the registered dataset `name` into the cache folder; the file's path."""
    if name not in datasets.DATASETS:
        raise UsageError(f"unknown dataset {name!r} (known: {', '.join(datasets.DATASETS)})")
    return datasets.fetch(datasets.DATASETS[name])


def info(options: dict[str, Any]) -> dict[str, Any]:
    """The figures of the corpus that the data options (as `train` takes them) describe."""
    with naming_sources(None, {}, options):
        cfg = Config().with_overrides(options).validate()
    return {"corpus": str(corpus.resolve_data(cfg.data.data)),
            **corpus.describe(corpus.load_corpus(cfg.data))}
