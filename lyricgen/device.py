"""`--device auto|cpu|cuda[:N]` to a torch.device, with a clear error for anything else."""

from __future__ import annotations

import torch

from lyricgen.errors import UsageError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {name!r}; use auto, cpu or cuda")  # mps, meta, ...
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name} was asked for, but this PyTorch "
                             f"({torch.__version__}) sees no CUDA device; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: this machine has {torch.cuda.device_count()} "
                             "CUDA device(s), numbered from 0")
    return device
