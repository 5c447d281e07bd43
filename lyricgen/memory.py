"""How much memory a run may use: what the system (or a container, or a CUDA device) has free,
and sizes written for people."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from lyricgen.errors import UsageError


def available_memory(device: torch.device) -> int | None:
    """Bytes free for this run: on CUDA the device's free memory; otherwise the system's
    available memory (free and reclaimable), at most a container's limit; None if unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    sizes = [size for size in (meminfo_available(), cgroup_limit()) if size is not None]
    if not sizes:
        try:
            sizes = [os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")]
        except (AttributeError, ValueError, OSError):  # not POSIX
            return None
    return min(sizes)


def require(need: int, device: torch.device, refusal: Callable[[int], str],
            available: int | None = None) -> None:
    """Refuse (UsageError `refusal(bytes free)`) a run needing `need` bytes more than the
    memory available (`available`, else measured); unknown memory refuses nothing."""
    have = available if available is not None else available_memory(device)
    if have is not None and need > have:
        raise UsageError(refusal(have))


def meminfo_available() -> int | None:
    """Linux's MemAvailable: free memory plus the page cache it can reclaim."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def cgroup_limit() -> int | None:
    """A container's memory limit (cgroup v2, else v1), which MemAvailable does not see. The
    limit itself, not what its usage leaves: that usage counts reclaimable cache, and a
    refusal must never be wrong."""
    for name in ("memory.max", "memory/memory.limit_in_bytes"):
        try:
            limit = int((Path("/sys/fs/cgroup") / name).read_text())
        except (OSError, ValueError):  # absent, or "max": no limit
            continue
        return limit if limit < 2**60 else None  # v1 writes "no limit" as about 2**63
    return None


def human_bytes(n: float) -> str:
    units = ("bytes", "KB", "MB", "GB", "TB", "PB")
    for unit in units:
        if n < 1000:
            break
        n /= 1000
    else:
        unit = "EB"
    return f"{n:,.0f} bytes" if unit == "bytes" else f"{n:,.1f} {unit}"
