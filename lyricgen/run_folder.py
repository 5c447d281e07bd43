"""A run's output folder: checked before a run starts, made only once it can, and an earlier
run's outputs cleared when told to."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from lyricgen.errors import LyricgenError, UsageError

OUTPUTS = ("last.pt", "best.pt", "metrics.jsonl")


def clear_outputs(out: Path) -> None:
    """Remove an earlier run's files (only once the new run's settings proved valid)."""
    for name in OUTPUTS:
        (out / name).unlink(missing_ok=True)


def check_out_dir(out: Path, fresh: bool, overwrite: bool) -> None:
    """`out` is a writable folder, or one that can be made (it is made only once training can
    start, so a failed start leaves nothing behind); a new run does not write over an old
    run's checkpoint unless told to."""
    existing = next(p for p in (out, *out.parents) if p.exists() or p == Path(p.anchor))
    if not existing.is_dir():
        raise LyricgenError(f"--out {out} is not a writable folder ({existing} is a file)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise LyricgenError(f"--out {out} is not a writable folder ({existing} is not "
                            "writable)")
    if existing == out:
        try:
            with tempfile.TemporaryFile(dir=out):
                pass
        except OSError as e:
            raise LyricgenError(f"--out {out} is not a writable folder ({e.strerror})") from None
    if fresh and not overwrite and (out / "last.pt").exists():
        raise UsageError(f"{out} already holds a training run (last.pt); continue it with "
                         "--resume, start over with --overwrite, or choose another --out")


def make_out_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LyricgenError(f"--out {out} is not a writable folder ({e.strerror})") from None
