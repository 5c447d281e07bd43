"""Vocab: characters <-> ids, built deterministically (sorted by code point) from a text."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import torch

from lyricgen.errors import LyricgenError, UsageError

UnknownPolicy = Literal["error", "skip"]

_CODEPOINTS = 0x110000
_CHUNK = 1 << 20  # characters encoded per step: bounds the temporary code-point buffers


class Vocab:
    """The characters of a corpus, sorted by code point; id i is `chars[i]`.

    `counts[i]` is how often `chars[i]` occurs in the text the vocab was built from; sampling
    uses it to draw a first character when the prefix is empty.
    """

    def __init__(self, chars: str, counts: Sequence[int] | None = None):
        if len(set(chars)) != len(chars) or list(chars) != sorted(chars):
            raise ValueError("vocab characters must be distinct and sorted")
        self.chars = chars
        self.counts = list(counts) if counts is not None else [1] * len(chars)
        self.index = {c: i for i, c in enumerate(chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.chars == other.chars

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of `text` that are not in the vocab, in order of appearance."""
        return list(dict.fromkeys(c for c in text if c not in self.index))

    def encode(self, text: str, unknown: UnknownPolicy = "error") -> list[int]:
        missing = self.unknown(text)
        if missing and unknown == "error":
            raise UnknownCharsError(missing)
        return [self.index[c] for c in text if c in self.index]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def to_dict(self) -> dict[str, Any]:
        return {"chars": self.chars, "counts": self.counts}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Vocab:
        return cls(d["chars"], d["counts"])


class UnknownCharsError(UsageError):
    def __init__(self, chars: list[str]):
        shown = ", ".join(repr(c) for c in chars[:10]) + (", ..." if len(chars) > 10 else "")
        super().__init__(f"{len(chars)} character(s) not in the model's vocabulary: {shown}")
        self.chars = chars


def build_vocab(text: str) -> tuple[Vocab, torch.Tensor]:
    """The vocab of `text` and `text` encoded as a 1-D tensor of ids in the smallest int dtype.

    Works on code-point arrays in chunks, so a 100 MB corpus never becomes a list of Python
    objects: one pass counts code points, a second maps them through a lookup table.
    """
    if not text:
        raise LyricgenError("cannot build a vocabulary from empty text")
    counts = torch.zeros(_CODEPOINTS, dtype=torch.int64)
    for chunk in _codepoint_chunks(text):
        counts += torch.bincount(chunk, minlength=_CODEPOINTS)
    present = torch.nonzero(counts).flatten()
    lookup = torch.full((_CODEPOINTS,), -1, dtype=torch.int32)
    lookup[present] = torch.arange(len(present), dtype=torch.int32)
    dtype = torch.int16 if len(present) <= torch.iinfo(torch.int16).max else torch.int32
    ids = torch.empty(len(text), dtype=dtype)
    for start, chunk in zip(range(0, len(text), _CHUNK), _codepoint_chunks(text)):
        ids[start:start + len(chunk)] = lookup[chunk]
    vocab = Vocab("".join(map(chr, present.tolist())), counts[present].tolist())
    return vocab, ids


def _codepoint_chunks(text: str) -> Iterable[torch.Tensor]:
    for start in range(0, len(text), _CHUNK):
        raw = bytearray(text[start:start + _CHUNK].encode("utf-32-le"))
        yield torch.frombuffer(raw, dtype=torch.int32).long()
