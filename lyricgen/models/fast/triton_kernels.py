"""The scratch LSTM's per-step elementwise work on CUDA as two Triton kernels: what
`lstm_step.c` does on the CPU, the maths of cell.lstm_cell (the reference; change both
together). Each time step's work becomes one kernel each way, which matters most when the
training step is replayed from a CUDA graph: launches are then nearly free, and what is left
is the number of kernels, each a few microseconds.

Triton comes with PyTorch's CUDA builds on Linux; CPU-only builds have none. The tests never
need a GPU: fast.check runs these kernels at first use, and benchmarks/gpu.py on a GPU.
"""

from __future__ import annotations

import torch

from lyricgen.models.fast.bptt import KernelUnavailable

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only torch: no Triton
    triton = None

BLOCK = 256  # elements of (B, H) per program


if triton is not None:
    @triton.jit
    def _tanh(x):
        return 2.0 * tl.sigmoid(2.0 * x) - 1.0

    @triton.jit
    def _forward(a, c_prev, c, tanh_c, h, H, n, BLOCK: tl.constexpr):
        # a (B, 4H): pre-activations in, activated gates out (saved for backward).
        k = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)  # index into (B, H)
        mask = k < n
        gate = (k // H) * 4 * H + k % H  # gate i of k in a; f, g, o follow H apart
        i = tl.sigmoid(tl.load(a + gate, mask=mask))
        f = tl.sigmoid(tl.load(a + gate + H, mask=mask))
        g = _tanh(tl.load(a + gate + 2 * H, mask=mask))
        o = tl.sigmoid(tl.load(a + gate + 3 * H, mask=mask))
        c_t = f * tl.load(c_prev + k, mask=mask) + i * g
        tanh_c_t = _tanh(c_t)
        tl.store(a + gate, i, mask=mask)
        tl.store(a + gate + H, f, mask=mask)
        tl.store(a + gate + 2 * H, g, mask=mask)
        tl.store(a + gate + 3 * H, o, mask=mask)
        tl.store(c + k, c_t, mask=mask)
        tl.store(tanh_c + k, tanh_c_t, mask=mask)
        tl.store(h + k, o * tanh_c_t, mask=mask)

    @triton.jit
    def _backward(a, c_prev, tanh_c, dh, dc, d_pre, H, n, BLOCK: tl.constexpr):
        # dc: dL/dc_t in, dL/dc_{t-1} out; d_pre (B, 4H): the gate pre-activations' gradient.
        k = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = k < n
        gate = (k // H) * 4 * H + k % H
        i = tl.load(a + gate, mask=mask)
        f = tl.load(a + gate + H, mask=mask)
        g = tl.load(a + gate + 2 * H, mask=mask)
        o = tl.load(a + gate + 3 * H, mask=mask)
        tc = tl.load(tanh_c + k, mask=mask)
        dh_t = tl.load(dh + k, mask=mask)
        dc_t = tl.load(dc + k, mask=mask) + dh_t * o * (1.0 - tc * tc)
        tl.store(d_pre + gate, dc_t * g * i * (1.0 - i), mask=mask)
        tl.store(d_pre + gate + H, dc_t * tl.load(c_prev + k, mask=mask) * f * (1.0 - f),
                 mask=mask)
        tl.store(d_pre + gate + 2 * H, dc_t * i * (1.0 - g * g), mask=mask)
        tl.store(d_pre + gate + 3 * H, dh_t * tc * o * (1.0 - o), mask=mask)
        tl.store(dc + k, dc_t * f, mask=mask)


class TritonStepKernels:
    """bptt.StepKernels over contiguous float32 CUDA tensors: the arguments are tensor views."""

    name = "Triton"

    @staticmethod
    def per_step(x: torch.Tensor) -> list[torch.Tensor]:
        return list(x.unbind(0))

    @staticmethod
    def one(x: torch.Tensor) -> torch.Tensor:
        return x

    @staticmethod
    def forward(B: int, H: int, a, c_prev, c, tanh_c, h) -> None:
        n = B * H
        _forward[(triton.cdiv(n, BLOCK),)](a, c_prev, c, tanh_c, h, H, n, BLOCK=BLOCK)

    @staticmethod
    def backward(B: int, H: int, a, c_prev, tanh_c, dh, dc, d_pre) -> None:
        n = B * H
        _backward[(triton.cdiv(n, BLOCK),)](a, c_prev, tanh_c, dh, dc, d_pre, H, n, BLOCK=BLOCK)


def load() -> TritonStepKernels:
    if triton is None:
        raise KernelUnavailable("Triton is not installed")
    return TritonStepKernels()
