"""`--device auto|cpu|cuda[:N]` to a torch.device, with a clear error when CUDA is missing."""

from __future__ import annotations

import torch

from lyricgen.errors import UsageError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name} was asked for, but this PyTorch ({torch.__version__}) "
                         "sees no CUDA device; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r}; use auto, cpu or cuda") from None
