"""Files a run writes: what a killed write leaves behind, whether a disk is full, making a
rename durable."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def disk_full(folder: Path) -> str:
    """': no space left on device' when `folder`'s file system is (nearly) full."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return ""
    return ": no space left on device" if free < (1 << 20) else ""


def remove_stale_temporaries(folder: Path) -> None:
    """Delete the temporary files of checkpoint writes whose process was killed mid-write."""
    for tmp in folder.glob(".*.pt.*.tmp"):
        pid = tmp.name.split(".")[-2]
        if pid.isdigit() and not alive(int(pid)):
            tmp.unlink(missing_ok=True)


def alive(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would end the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    return True


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some file systems cannot open folders; the rename is done regardless
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
