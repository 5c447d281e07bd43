"""The scratch LSTM's fast path: one layer over a whole sequence as one autograd Function, with
the backward pass (BPTT) written by hand instead of recorded step by step.

It computes exactly what `scratch.lstm_cell` computes, step after step; the tests hold it to
that cell, to torch.nn.LSTM, and to `torch.autograd.gradcheck`. What makes it fast:

- the input projection of all T steps arrives precomputed (`xw`) and is copied once into the
  gate buffer, so each step adds one (B, H) x (H, 4H) matmul into it, then runs 7 small
  in-place ops;
- the backward pass follows the derivation in the seeds' numpy LSTM: with the gate activations
  saved by the forward pass, every factor that does not depend on the carried gradients
  (e.g. g * i * (1 - i) for the input gate) is computed for all steps at once before the loop,
  which leaves 5 ops per step; the gradient of W_hh is one matmul over all steps after it;
- with `kernels` (native.py on the CPU, triton_step.py on CUDA), each step's elementwise ops
  are one C loop or one Triton kernel instead, forward and backward (which then computes its
  factors inside that loop);
- a one-hot input's projection W_ih x is column x of W_ih (`column_lookup`): with W_ih stored
  column-major, a gather of contiguous rows forward and an index_add backward.

Gate order is nn.LSTM's: input i, forget f, candidate g, output o, each a block of H columns.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from lyricgen.models.native import StepKernels
from lyricgen.models.triton_step import TritonStepKernels

Kernels = StepKernels | TritonStepKernels | None


def lstm_layer_forward(xw: torch.Tensor, w_hh: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor,
                       kernels: Kernels = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run one layer over all steps without recording autograd; with `kernels`, each step's
    elementwise part runs in C (float32 CPU tensors) or Triton (float32 CUDA tensors).

    xw (T, B, 4H): W_ih x_t + b_ih + b_hh;  w_hh (4H, H);  h0, c0 (B, H).
    Returns hs (T, B, H), cs (T, B, H), activated gates (T, B, 4H), tanh(cs) (T, B, H).
    """
    T, B, G = xw.shape
    H = G // 4
    gates = xw.clone(memory_format=torch.contiguous_format)  # gains W_hh h step by step
    cs, tanh_cs, hs = (xw.new_empty(T, B, H) for _ in range(3))
    w_hh_t = w_hh.t()
    if kernels is not None:
        c0 = c0.contiguous()  # kept referenced: the C kernels read it through a pointer
        arg = kernels.per_step  # per-step pointers (C) or views (Triton)
        steps = zip(gates.unbind(0), [h0, *hs.unbind(0)[:-1]], arg(gates),
                    [kernels.one(c0), *arg(cs)[:-1]], arg(cs), arg(tanh_cs), arg(hs))
        for a, h, *args in steps:
            a.addmm_(h, w_hh_t)  # gate pre-activations (B, 4H)
            kernels.forward(B, H, *args)  # what the eager loop below does
        return hs, cs, gates, tanh_cs
    # Per-step views, made once: indexing inside the loop would cost a call per view per step.
    steps = zip(gates.unbind(0), gates[..., :2 * H].unbind(0),
                gates[..., 2 * H:3 * H].unbind(0), gates[..., 3 * H:].unbind(0),
                gates[..., :H].unbind(0), gates[..., H:2 * H].unbind(0),
                cs.unbind(0), tanh_cs.unbind(0), hs.unbind(0))
    h, c = h0, c0
    for a, i_f, g, o, i, f, c_t, tanh_c, h_t in steps:
        a.addmm_(h, w_hh_t)  # pre-activations of all four gates (B, 4H)
        i_f.sigmoid_()
        g.tanh_()
        o.sigmoid_()
        torch.mul(f, c, out=c_t)
        c_t.addcmul_(i, g)  # c_t = f * c_{t-1} + i * g
        torch.tanh(c_t, out=tanh_c)
        torch.mul(o, tanh_c, out=h_t)  # h_t = o * tanh(c_t)
        h, c = h_t, c_t
    return hs, cs, gates, tanh_cs


class RowLookup(torch.autograd.Function):
    """(table (V, G), ids (N,)) -> table[ids] (N, G), with a backward pass that adds the N
    gradient rows into a zero (V, G) table: an index_add, which on CPU is an order of magnitude
    faster than the dense embedding backward torch uses for F.embedding."""

    @staticmethod
    def forward(ctx, table, ids):
        ctx.save_for_backward(ids)
        ctx.rows = table.shape[0]
        return table.index_select(0, ids)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (ids,) = ctx.saved_tensors
        return grad.new_zeros(ctx.rows, grad.shape[1]).index_add_(0, ids, grad), None


def lookup_rows(table: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """table[ids]: through RowLookup when a gradient is wanted, else a plain index_select."""
    if torch.is_grad_enabled() and table.requires_grad:
        return RowLookup.apply(table, ids)
    return table.index_select(0, ids)


def column_lookup(weight: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """W x for one-hot vectors x, (weight (G, V), ids (N,)) -> (N, G): the columns of W.
    Fast when W is stored column-major, as ScratchLSTM stores a one-hot layer's W_ih: its
    columns are then contiguous rows of memory, and so are those of its gradient."""
    return lookup_rows(weight.t(), ids)


class LSTMLayer(torch.autograd.Function):
    """(xw, w_hh, h0, c0, kernels) -> (hs (T, B, H), c_T (B, H)); h_T is hs[-1]. `kernels`
    (C, Triton or None) runs the steps' elementwise parts, both ways."""

    @staticmethod
    def forward(ctx, xw, w_hh, h0, c0, kernels=None):
        hs, cs, gates, tanh_cs = lstm_layer_forward(xw, w_hh, h0, c0, kernels)
        ctx.save_for_backward(w_hh, h0, c0, hs, cs, gates, tanh_cs)
        ctx.kernels = kernels
        return hs, cs[-1]

    @staticmethod
    @once_differentiable
    def backward(ctx, d_hs, d_cT):
        w_hh, h0, c0, hs, cs, gates, tanh_cs = ctx.saved_tensors
        _, B, H = hs.shape
        d_pre = torch.empty_like(gates)  # (T, B, 4H): gradient of the gate pre-activations
        dh = d_hs.clone(memory_format=torch.contiguous_format)  # gains dh_{t-1} += d_pre_t W_hh
        d_h0 = torch.zeros_like(h0)
        dc = d_cT.clone(memory_format=torch.contiguous_format)  # dL/dc_t, carried back in time
        # dh_{t-1} of step 0 is d_h0
        dh_prev = reversed([d_h0, *dh.unbind(0)[:-1]])
        kernels = ctx.kernels
        if kernels is not None:
            c0 = c0.contiguous()  # kept referenced: the C kernels read it through a pointer
            arg = kernels.per_step
            steps = zip(*(reversed(x) for x in (
                arg(gates), [kernels.one(c0), *arg(cs)[:-1]], arg(tanh_cs), arg(dh),
                arg(d_pre))), reversed(d_pre.unbind(0)), dh_prev)
            dc_arg = kernels.one(dc)
            for a, c_prev, tanh_c, dh_t, d_pre_arg, d_pre_t, dh_prev_t in steps:
                kernels.backward(B, H, a, c_prev, tanh_c, dh_t, dc_arg, d_pre_arg)
                dh_prev_t.addmm_(d_pre_t, w_hh)
        else:
            _backward_steps(d_pre, dh, dc, dh_prev, w_hh, c0, cs, gates, tanh_cs)
        # dW_hh = sum over steps of d_pre_t^T h_{t-1}: one matmul (h_{-1} = h0 apart)
        d_w_hh = torch.addmm(d_pre[0].t() @ h0, d_pre[1:].reshape(-1, 4 * H).t(),
                             hs[:-1].reshape(-1, H))
        return d_pre, d_w_hh, d_h0, dc, None


def _backward_steps(d_pre, dh, dc, dh_prev, w_hh, c0, cs, gates, tanh_cs) -> None:
    """The eager backward loop: fills d_pre, adds into dh / dh_prev, carries dc back."""
    T, B, H = cs.shape
    i, f, g, o = gates.split(H, dim=-1)  # (T, B, H) each
    # dL/d(pre-activation) = (carried gradient) x (factor known from the forward pass):
    #   input  i: dc_t * g_t * i_t (1 - i_t)        forget f: dc_t * c_{t-1} * f_t (1 - f_t)
    #   cand.  g: dc_t * i_t * (1 - g_t^2)          output o: dh_t * tanh(c_t) * o_t (1 - o_t)
    # and dc_t = dc_{t+1} f_{t+1} + dh_t * o_t * (1 - tanh(c_t)^2).
    # The factors are written in place (x (1 - x) as x - x^2), without temporaries.
    factors = gates.new_empty(T, B, 3, H)
    f_i, f_f, f_g = factors.unbind(2)
    o_factor, c_factor = torch.empty_like(cs), torch.empty_like(cs)
    for x, out in ((i, f_i), (f, f_f), (o, o_factor)):
        torch.sub(x, torch.mul(x, x, out=out), out=out)  # x (1 - x)
    f_i.mul_(g)
    f_f[0].mul_(c0)
    f_f[1:].mul_(cs[:-1])
    torch.addcmul(i, i, torch.mul(g, g, out=f_g), value=-1, out=f_g)  # i (1 - g^2)
    o_factor.mul_(tanh_cs)
    torch.addcmul(o, o, torch.mul(tanh_cs, tanh_cs, out=c_factor), value=-1, out=c_factor)

    dc_3 = dc.unsqueeze(1)  # (B, 1, H): dc for the i, f, g factors at once
    # Per-step views, made once, in reverse time order.
    steps = zip(*(reversed(x.unbind(0)) for x in (
        dh, c_factor, factors, d_pre[..., :3 * H].view(T, B, 3, H), o_factor,
        d_pre[..., 3 * H:], f, d_pre)), dh_prev)
    for dh_t, c_factor_t, factors_t, d_ifg_t, o_factor_t, d_o_t, f_t, d_pre_t, dh_prev_t in steps:
        dc.addcmul_(dh_t, c_factor_t)
        torch.mul(factors_t, dc_3, out=d_ifg_t)
        torch.mul(dh_t, o_factor_t, out=d_o_t)
        dc.mul_(f_t)  # now dL/dc_{t-1}
        dh_prev_t.addmm_(d_pre_t, w_hh)
