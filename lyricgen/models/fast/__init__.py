"""The scratch LSTM's fast paths, and the one decision of which path runs.

- `readable`: cell.lstm_layer under autograd; always there.
- `c`: the hand-written BPTT (bptt.py) with each step's elementwise work as one C loop each
  way (lstm_step.c, built by c_kernels.py): float32 on the CPU, where a C compiler works.
- `triton`: the same BPTT with that work as one Triton kernel each way (triton_kernels.py):
  float32 on CUDA, where Triton is installed.

Compiled kernels are loaded once per process and, before first use, run one small step on
fixed values, forward and backward, checked against cell.lstm_cell and autograd; kernels
that cannot be had or fail the check are not used, and `choose` says why.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from lyricgen.errors import first_line
from lyricgen.models.cell import lstm_cell
from lyricgen.models.fast import bptt, c_kernels, triton_kernels
from lyricgen.models.fast.bptt import KernelUnavailable, StepKernels

LOADERS: dict[str, Callable[[], StepKernels]] = {"c": c_kernels.load,
                                                 "triton": triton_kernels.load}


@dataclass(frozen=True)
class Path:
    name: str  # readable | c | triton
    why: str  # a phrase: why this path runs
    kernels: StepKernels | None = None
    failed: bool = False  # a compiled path was meant for these weights but is unavailable

    def run_layer(self, x_proj: torch.Tensor, w_hh: torch.Tensor, h: torch.Tensor,
                  c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """bptt.run_layer through this path's kernels (it has some)."""
        return bptt.run_layer(x_proj, w_hh, h, c, self.kernels)

    def note(self) -> str | None:
        """The line to print before training when a faster path was meant but is missing."""
        if not self.failed:
            return None
        return (f"note: {self.why}; the scratch LSTM runs its readable PyTorch path, which is "
                "slower")


READABLE = Path("readable", "asked for")


def choose(weight: torch.Tensor) -> Path:
    """The path for an LSTM whose weights are like `weight`."""
    kind = {"cpu": "c", "cuda": "triton"}.get(weight.device.type)
    if kind is None or weight.dtype != torch.float32:
        return Path("readable", f"no compiled path for {weight.dtype} on {weight.device.type}")
    loaded = _load(kind, weight.device)
    if isinstance(loaded, str):
        return Path("readable", loaded, failed=True)
    return Path(kind, f"{kind} step kernels for float32 on {weight.device.type}", loaded)


@functools.cache
def _load(kind: str, device: torch.device) -> StepKernels | str:
    """The kernels of `kind`, checked on `device`; else why not. Cached for the process."""
    try:
        kernels = LOADERS[kind]()
        # The check takes gradients, also when the first use is under inference_mode.
        with torch.inference_mode(False), torch.enable_grad():
            check(kernels, device)
    except KernelUnavailable as e:
        return str(e)
    return kernels


def check(kernels: StepKernels, device: torch.device) -> None:
    """One step of B 3, H 5 on fixed values (no random draws: the check must not move the
    device's random stream), forward and backward, against cell.lstm_cell and autograd."""
    B, H = 3, 5
    grid = lambda n, lo, hi: torch.linspace(lo, hi, B * n).view(B, n)  # noqa: E731
    pre, c_prev, dh, dc_next = grid(4 * H, -6, 6), grid(H, -2, 2), grid(H, -1, 1), grid(H, 1, -1)

    # The reference, in float64: h, c of one step from pre-activations, and the gradients of
    # sum(h dh) + sum(c dc_next) with respect to the pre-activations and c_prev.
    pre64, c_prev64 = (x.double().requires_grad_() for x in (pre, c_prev))
    h64, c64 = lstm_cell(pre64, torch.zeros(B, H, dtype=torch.float64), c_prev64,
                         torch.zeros(4 * H, H, dtype=torch.float64))
    d_pre64, dc64 = torch.autograd.grad((h64 * dh.double()).sum() + (c64 * dc_next.double()).sum(),
                                        (pre64, c_prev64))

    a, c_prev, dh, dc = (x.to(device) for x in (pre, c_prev, dh, dc_next))
    c, tanh_c, h, d_pre = (torch.empty_like(x) for x in (c_prev, c_prev, c_prev, a))
    try:
        with torch.cuda.device(device) if device.type == "cuda" else nullcontext():
            kernels.forward(B, H, *map(kernels.one, (a, c_prev, c, tanh_c, h)))
            kernels.backward(B, H, *map(kernels.one, (a, c_prev, tanh_c, dh, dc, d_pre)))
        outputs = [t.cpu().double() for t in (h, c, d_pre, dc)]
    except Exception as e:  # noqa: BLE001 - a compiler, loader or driver problem
        raise KernelUnavailable(f"the {kernels.name} step kernels failed to run "
                                f"({type(e).__name__}: {first_line(e)})") from None
    for ours, theirs in zip(outputs, (h64, c64, d_pre64, dc64)):
        if not torch.allclose(ours, theirs.detach(), atol=1e-5, rtol=1e-5):
            raise KernelUnavailable(f"the {kernels.name} step kernels disagreed with "
                                    "cell.lstm_cell")

