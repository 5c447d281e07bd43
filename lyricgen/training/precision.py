"""How training multiplies float32 matrices on the CPU: in float32, or as products of bfloat16
inputs accumulated in float32 (oneDNN's implicit down-conversion; the weights, the optimizer
and everything between the matmuls stay float32).

On a CPU with AMX tiles a bfloat16 product runs several times faster, and a training step of
the default model about 1.8x faster. Each product rounds its inputs to 8 significant bits
(~0.3%): measured on the lyrics (benchmarks/precision.py), the held-out perplexity stayed
within 0.2% of float32's epoch by epoch. Validation and sampling always multiply in float32.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def supported() -> bool:
    """This torch lets float32 matmuls on the CPU round their inputs to bfloat16."""
    return hasattr(getattr(torch.backends.mkldnn, "matmul", None), "fp32_precision")


def has_amx() -> bool:
    """The CPU has AMX tiles (torch asks the CPU and the OS); False where torch cannot tell."""
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(check and check())


def choose(choice: str, device: torch.device) -> tuple[bool, str | None]:
    """(multiply in bfloat16, a note to print or None) for `choice` (TrainConfig.matmul: auto,
    float32 or bfloat16) on `device`: auto means bfloat16 on a CPU with AMX, else float32."""
    if choice == "float32":
        return False, None
    if device.type != "cpu":
        note = "note: --matmul bfloat16 is for the CPU; on CUDA training multiplies in float32"
        return False, note if choice == "bfloat16" else None
    if not supported():
        note = f"note: torch {torch.__version__} cannot round CPU matmuls to bfloat16; " \
               "training multiplies in float32"
        return False, note if choice == "bfloat16" else None
    if choice == "bfloat16":
        return True, None
    if has_amx():
        return True, ("training multiplies matrices in bfloat16 (this CPU has AMX, where it is "
                      "about 1.8x faster; --matmul float32 for float32 products)")
    return False, None


@contextmanager
def bfloat16_matmuls() -> Iterator[None]:
    """Within: oneDNN's float32 matmuls and RNN cells on the CPU take bfloat16 inputs. The
    setting is process-wide, so it is switched only around a training step."""
    backends = torch.backends.mkldnn.matmul, torch.backends.mkldnn.rnn
    before = [b.fp32_precision for b in backends]
    for b in backends:
        b.fp32_precision = "bf16"
    try:
        yield
    finally:
        for b, value in zip(backends, before):
            b.fp32_precision = value
