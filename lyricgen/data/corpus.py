"""A corpus: text read (text_files.py) or fetched (datasets.py), normalised, encoded as ids,
split into training and held-out parts."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import torch

from lyricgen.data.cleaning import Cleaning
from lyricgen.config import DataConfig
from lyricgen.copies import DEFAULT_RUN, MAX_GUARDED, CopyIndex
from lyricgen.data.datasets import DATASETS, fetch, registered
from lyricgen.errors import LyricgenError
from lyricgen.data.text_files import read_text
from lyricgen.data.vocab import Vocab, build_vocab


@dataclass
class Corpus:
    """A corpus encoded as ids; the validation part is the contiguous tail of the stream."""

    vocab: Vocab
    ids: torch.Tensor  # (N,) int16/int32
    num_train: int
    num_lines: int
    sha256: str  # of the normalised text, so a resumed run can tell that its corpus changed

    @property
    def train_ids(self) -> torch.Tensor:
        return self.ids[: self.num_train]

    @property
    def val_ids(self) -> torch.Tensor:
        return self.ids[self.num_train:]

    @property
    def kept_ids(self) -> torch.Tensor:
        """What a checkpoint keeps of the text for the copy guard."""
        return self.ids[:MAX_GUARDED]

    @cached_property
    def copies(self) -> CopyIndex:
        """The copy guard `sample` uses by default (training's previews draw as it does)."""
        return CopyIndex(self.kept_ids, self.vocab, DEFAULT_RUN)


def load_corpus(cfg: DataConfig, progress: bool = True) -> Corpus:
    path = resolve_data(cfg.data, progress)
    text = normalise(read_text(path, max_chars=cfg.max_chars), cfg, path)
    vocab, ids = build_vocab(text)
    num_val = int(len(text) * cfg.val_fraction)
    return Corpus(vocab, ids, len(text) - num_val, _count_lines(text),
                  hashlib.sha256(text.encode("utf-8")).hexdigest())


def normalise(text: str, cfg: DataConfig, path: Path) -> str:
    """Clean text read by `read_text` from `path` (`--script`, `--tidy-spaces`,
    `--drop-lines`), then apply `--newlines` and `--max-chars`."""
    text = cleaning_of(cfg, path).apply(text)
    if cfg.newlines == "space":
        text = text.replace("\n", " ")
    if cfg.max_chars is not None:
        text = text[: cfg.max_chars]
    return text


def cleaning_of(cfg: DataConfig, path: Path) -> Cleaning:
    """The cleaning `cfg` asks for: each setting left unset is the registered dataset's (when
    `path` is one, by name or by content), else off."""
    dataset = registered(path)
    base = dataset.cleaning if dataset is not None else Cleaning()
    given = {k: v for k, v in (("script", cfg.script), ("tidy_spaces", cfg.tidy_spaces),
                               ("drop_lines", cfg.drop_lines)) if v is not None}
    return replace(base, **given)


def resolve_data(spec: str, progress: bool = True) -> Path:
    """`--data`: an existing path, else a registry name (fetched into the cache when missing
    or damaged)."""
    path = Path(spec).expanduser()
    if path.exists():
        return path
    if spec in DATASETS:
        return fetch(DATASETS[spec], progress)
    raise LyricgenError(f"corpus not found: {spec} (give a .txt file, a .zip, a folder of .txt "
                        f"files, or a dataset name: {', '.join(DATASETS)})")


def _count_lines(text: str) -> int:
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def describe(corpus: Corpus, top: int = 10) -> dict:
    """The figures `lyricgen data info` prints."""
    order = sorted(range(len(corpus.vocab)), key=lambda i: -corpus.vocab.counts[i])[:top]
    return {
        "chars": len(corpus.ids),
        "vocab_size": len(corpus.vocab),
        "lines": corpus.num_lines,
        "train_chars": corpus.num_train,
        "val_chars": len(corpus.ids) - corpus.num_train,
        "most_common": [[corpus.vocab.chars[i], corpus.vocab.counts[i]] for i in order],
        "sha256": corpus.sha256,
    }
