"""A compact fingerprint of a text's lines, kept in checkpoints so that sampling can tell a
generated line that copies one of the training text (`--no-copy`) without the text itself:
an 8-byte hash of every distinct line of at least MIN_CHARS characters, sorted."""

from __future__ import annotations

import hashlib

import torch

MIN_CHARS = 6  # shorter lines are common phrases, not copies


def significant(line: str) -> bool:
    """Whether `line` is long enough that equal text counts as a copy."""
    return sum(not c.isspace() for c in line) >= MIN_CHARS


def line_hash(line: str) -> int:
    digest = hashlib.blake2b(line.strip().encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def line_hashes(text: str) -> torch.Tensor:
    """The sorted hashes (int64) of the distinct significant lines of `text`."""
    hashes = {line_hash(line) for line in text.split("\n") if significant(line)}
    return torch.tensor(sorted(hashes), dtype=torch.int64)


def contains(hashes: torch.Tensor, line: str) -> bool:
    """Whether `line` (significant) equals, after stripping, a line the hashes were made from.
    8-byte hashes: a false match is about 1 in 10^19 per pair."""
    if not significant(line) or not len(hashes):
        return False
    h = torch.tensor(line_hash(line), dtype=torch.int64)
    i = int(torch.searchsorted(hashes, h))
    return i < len(hashes) and int(hashes[i]) == int(h)


def copied(hashes: torch.Tensor | None, line: str) -> bool | None:
    """`contains`, or None when there is no fingerprint to tell by (an older checkpoint)."""
    return None if hashes is None else contains(hashes, line)
