"""A run folder's lock: `OUT/.lock`, held (flock) while a run writes OUT."""

from __future__ import annotations

import os
from pathlib import Path

from lyricgen.errors import LyricgenError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: runs are not locked
    fcntl = None

LOCK = ".lock"  # in a run folder while a run writes it


class RunLock:
    """`OUT/.lock` locked (flock) while a run writes OUT, holding the run's pid, so that a
    second run into OUT (train, resume or compare) is refused, naming it. The system drops a
    lock when its process ends, however it ends: the file of a killed run blocks nothing. A
    run removes its lock files as it ends."""

    def __init__(self) -> None:
        self.held: dict[Path, int] = {}  # folder -> open descriptor of its lock file

    def hold_if_there(self, out: Path) -> None:
        """Lock `out` now if it is already a folder (a new one is locked once made)."""
        if out.is_dir():
            self.hold(out)

    def hold(self, out: Path) -> None:
        if fcntl is None or out in self.held:
            return
        path = out / LOCK
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:  # not a writable folder: check_out_dir says so, in its words
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise LyricgenError(f"--out {out} is in use by another lyricgen run "
                                    f"({holder(path)}); wait for it to end, or choose another "
                                    "--out") from None
            if same_file(fd, path):
                break
            os.close(fd)  # a run that ended removed the file we locked: lock the new one
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.held[out] = fd

    def release(self) -> None:
        for out, fd in self.held.items():
            # Removed while still locked, so no other run can have locked this file meanwhile.
            (out / LOCK).unlink(missing_ok=True)
            os.close(fd)
        self.held.clear()


def holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "its pid is not yet written"


def same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False
