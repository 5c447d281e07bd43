"""One LSTM layer over a whole sequence as one autograd Function, with the backward pass (BPTT)
written by hand instead of recorded step by step, and each step's elementwise work done by
compiled step kernels (C on the CPU, Triton on CUDA).

It computes what cell.lstm_cell computes, step after step; the tests hold it to that cell,
to torch.nn.LSTM and to `torch.autograd.gradcheck`. What makes it fast:

- the input projection of all T steps arrives precomputed (`x_proj`) and is copied once into
  the gate buffer, so each step adds one (B, H) x (H, 4H) matmul into it, then makes one
  kernel call (3 sigmoids, 2 tanh, the new c and h);
- backward, with the gate activations saved by the forward pass, each step is one kernel call
  (the gate gradients and the carried dc, as derived in the seeds' numpy LSTM) and one matmul
  for dh_{t-1}; the gradient of W_hh is one matmul over all steps after the loop.

Gate order is nn.LSTM's: input i, forget f, candidate g, output o, each a block of H columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch.autograd.function import once_differentiable


class KernelUnavailable(RuntimeError):
    """Step kernels could not be built, loaded or trusted; the message says why."""


class StepKernels(Protocol):
    """One step's elementwise work over contiguous float32 tensors, laid out as lstm_step.c
    says. Arguments are what `one` and `per_step` make of tensors: data pointers for C,
    tensor views for Triton."""

    name: str

    def one(self, x: torch.Tensor) -> Any: ...

    def per_step(self, x: torch.Tensor) -> Sequence[Any]:
        """The arguments for x[0], x[1], ... of a contiguous (T, ...) tensor."""

    def forward(self, B: int, H: int, a, c_prev, c, tanh_c, h) -> None:
        """a (B, 4H): pre-activations in, activations out; c_prev in; c, tanh(c), h out."""

    def backward(self, B: int, H: int, a, c_prev, tanh_c, dh, dc, d_pre) -> None:
        """dc: dL/dc_t in, dL/dc_{t-1} out; d_pre (B, 4H): the pre-activations' gradient."""


def run_layer(x_proj: torch.Tensor, w_hh: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor,
              kernels: StepKernels) -> tuple[torch.Tensor, torch.Tensor]:
    """(outputs (T, B, H), the last c (B, H)): through LSTMLayer when a gradient is wanted,
    else the forward steps alone (evaluation and warm-ups save nothing for a backward pass)."""
    if torch.is_grad_enabled():
        return LSTMLayer.apply(x_proj, w_hh, h0, c0, kernels)
    # W_hh^T laid out contiguously: at evaluation's 8-32 rows its products run 1.4-2.3x faster
    # (measured here), which pays for the copy
    w_hh = w_hh.t().contiguous().t()
    hs, cs, _, _ = forward_steps(x_proj, w_hh, h0, c0, kernels)
    return hs, cs[-1]


def forward_steps(x_proj: torch.Tensor, w_hh: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor,
                  kernels: StepKernels
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """x_proj (T, B, 4H), w_hh (4H, H), h0 and c0 (B, H) -> hs, cs, tanh(cs) (T, B, H) each and
    the activated gates (T, B, 4H), without recording autograd."""
    T, B, G = x_proj.shape
    H = G // 4
    gates = x_proj.clone(memory_format=torch.contiguous_format)  # gains W_hh h step by step
    hs, cs, tanh_cs = (x_proj.new_empty(T, B, H) for _ in range(3))
    c0 = c0.contiguous()  # kept referenced: the C kernels read it through a pointer
    w_hh_t = w_hh.t()
    arg = kernels.per_step
    steps = zip(gates.unbind(0), [h0, *hs.unbind(0)[:-1]], arg(gates),
                [kernels.one(c0), *arg(cs)[:-1]], arg(cs), arg(tanh_cs), arg(hs))
    for a, h, *args in steps:
        a.addmm_(h, w_hh_t)  # the gates' pre-activations (B, 4H)
        kernels.forward(B, H, *args)
    return hs, cs, tanh_cs, gates


class LSTMLayer(torch.autograd.Function):
    """(x_proj, w_hh, h0, c0, kernels) -> (hs (T, B, H), c_T (B, H)); h_T is hs[-1]."""

    @staticmethod
    def forward(ctx, x_proj, w_hh, h0, c0, kernels):
        hs, cs, tanh_cs, gates = forward_steps(x_proj, w_hh, h0, c0, kernels)
        ctx.save_for_backward(w_hh, h0, c0, hs, cs, tanh_cs, gates)
        ctx.kernels = kernels
        return hs, cs[-1]

    @staticmethod
    @once_differentiable
    def backward(ctx, d_hs, d_cT):
        w_hh, h0, c0, hs, cs, tanh_cs, gates = ctx.saved_tensors
        kernels, (_, B, H) = ctx.kernels, hs.shape
        d_pre = torch.empty_like(gates)  # (T, B, 4H): gradient of the gate pre-activations
        dh = d_hs.clone(memory_format=torch.contiguous_format)  # gains d_pre_{t+1} W_hh
        d_h0 = torch.zeros_like(h0)
        dc = d_cT.clone(memory_format=torch.contiguous_format)  # dL/dc_t, carried back in time
        c0 = c0.contiguous()  # kept referenced: the C kernels read it through a pointer
        arg = kernels.per_step
        steps = zip(*(reversed(x) for x in (
            arg(gates), [kernels.one(c0), *arg(cs)[:-1]], arg(tanh_cs), arg(dh), arg(d_pre),
            d_pre.unbind(0), [d_h0, *dh.unbind(0)[:-1]])))
        dc_arg = kernels.one(dc)
        for a, c_prev, tanh_c, dh_t, d_pre_arg, d_pre_t, dh_prev in steps:
            kernels.backward(B, H, a, c_prev, tanh_c, dh_t, dc_arg, d_pre_arg)
            dh_prev.addmm_(d_pre_t, w_hh)  # dh_{t-1} += d_pre_t W_hh
        # dW_hh = sum over steps of d_pre_t^T h_{t-1}: one matmul (h_{-1} = h0 apart)
        d_w_hh = torch.addmm(d_pre[0].t() @ h0, d_pre[1:].reshape(-1, 4 * H).t(),
                             hs[:-1].reshape(-1, H))
        return d_pre, d_w_hh, d_h0, dc, None
