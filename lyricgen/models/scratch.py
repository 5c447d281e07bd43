"""An LSTM made by hand from nn.Parameter tensors, gate by gate.

Parameters have the names, shapes, registration order and initialisation of `torch.nn.LSTM`
(see DESIGN.md), so a state_dict moves between this module and nn.LSTM unchanged:

    weight_ih_l{k} (4H, in)   weight_hh_l{k} (4H, H)   bias_ih_l{k} (4H)   bias_hh_l{k} (4H)

with the 4H rows in the order input gate i, forget gate f, cell candidate g, output gate o.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lyricgen.models import native, triton_step
from lyricgen.models.fused import Kernels, LSTMLayer, column_lookup, lstm_layer_forward

State = tuple[torch.Tensor, torch.Tensor]


def step_kernels(weight: torch.Tensor) -> Kernels:
    """The step kernels for `weight`'s device and dtype: C on the CPU, Triton on CUDA
    (float32 only), None where there are none and the PyTorch ops run."""
    if native.usable(weight):
        return native.step_kernels()
    if triton_step.usable(weight):
        return triton_step.step_kernels()
    return None


def lstm_cell(xw: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
              weight_hh: torch.Tensor) -> State:
    """One time step. `xw` (B, 4H) is W_ih x + b_ih + b_hh, already computed for every step."""
    gates = torch.addmm(xw, h, weight_hh.t())  # W_ih x + b_ih + b_hh + W_hh h: (B, 4H)
    i, f, g, o = gates.chunk(4, dim=1)
    i = torch.sigmoid(i)  # input gate: how much of the candidate enters the cell
    f = torch.sigmoid(f)  # forget gate: how much of the old cell is kept
    g = torch.tanh(g)  # cell candidate
    o = torch.sigmoid(o)  # output gate: how much of the cell is shown as h
    c = f * c + i * g
    h = o * torch.tanh(c)
    return h, c


class ScratchLSTM(nn.Module):
    """Multi-layer LSTM over (B, T, in) floats or, for one-hot input, (B, T) integer ids.

    `fused` (the default) runs each layer through `fused.LSTMLayer`, a hand-written BPTT over
    the whole sequence; `fused=False` runs `lstm_cell` step by step under autograd, the
    readable reference the fast path is tested against. With `native` (the default) the fused
    path runs its steps' elementwise parts through step kernels for float32 tensors: the C
    kernels of `native.py` on the CPU where they can be built, `triton_step.py`'s on CUDA
    where Triton is installed. (Sampling steps run through `stepper.Stepper`, the same cell
    with the weights rearranged for one character per step.)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0, fused: bool = True, onehot: bool = False,
                 native: bool = True):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.dropout, self.fused = num_layers, dropout, fused
        self.native = native
        gates = 4 * hidden_size
        for k in range(num_layers):
            layer_in = input_size if k == 0 else hidden_size
            w_ih = torch.empty(gates, layer_in)
            if k == 0 and onehot:  # shape (4H, V) as nn.LSTM's, stored column-major: see
                w_ih = torch.empty(layer_in, gates).t()  # fused.column_lookup
            self.register_parameter(f"weight_ih_l{k}", nn.Parameter(w_ih))
            self.register_parameter(f"weight_hh_l{k}",
                                    nn.Parameter(torch.empty(gates, hidden_size)))
            self.register_parameter(f"bias_ih_l{k}", nn.Parameter(torch.empty(gates)))
            self.register_parameter(f"bias_hh_l{k}", nn.Parameter(torch.empty(gates)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.LSTM's rule, in its order: the same seed gives the same weights in both backends.
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for p in self.parameters():  # drawn in logical order, whatever the memory layout
                p.copy_(torch.empty(p.shape, dtype=p.dtype).uniform_(-bound, bound))

    def layer(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return (getattr(self, f"weight_ih_l{k}"), getattr(self, f"weight_hh_l{k}"),
                getattr(self, f"bias_ih_l{k}"), getattr(self, f"bias_hh_l{k}"))

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        B, T = x.shape[:2]
        if state is None:
            zeros = x.new_zeros((self.num_layers, B, self.hidden_size),
                                dtype=self.weight_hh_l0.dtype)
            state = (zeros, zeros)
        layer_in = x.t() if x.dtype in _INDEX_DTYPES else x.transpose(0, 1)  # time-major
        kernels = step_kernels(self.weight_hh_l0) if self.fused and self.native else None
        last_h, last_c = [], []
        for k in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self.layer(k)
            if layer_in.dtype in _INDEX_DTYPES:
                # W_ih times a one-hot vector is column x of W_ih: a lookup, never a dense matmul.
                xw = column_lookup(w_ih, layer_in.reshape(-1)).view(T, B, -1) + (b_ih + b_hh)
            else:
                xw = torch.addmm(b_ih + b_hh, layer_in.reshape(T * B, -1), w_ih.t()).view(T, B, -1)
            h, c = state[0][k], state[1][k]
            if not self.fused:  # the readable cell: the reference path
                outputs = []
                for t in range(T):
                    h, c = lstm_cell(xw[t], h, c, w_hh)
                    outputs.append(h)
                layer_in = torch.stack(outputs)  # (T, B, H)
            elif torch.is_grad_enabled():
                layer_in, c = LSTMLayer.apply(xw, w_hh, h, c, kernels)  # (T, B, H), (B, H)
                h = layer_in[-1]
            else:  # sampling, evaluation: nothing to save for a backward pass
                layer_in, cs, _, _ = lstm_layer_forward(xw, w_hh, h, c, kernels)
                h, c = layer_in[-1], cs[-1]
            if self.dropout and self.training and k < self.num_layers - 1:
                layer_in = F.dropout(layer_in, self.dropout, training=True)
            last_h.append(h)
            last_c.append(c)
        return layer_in.transpose(0, 1), (torch.stack(last_h), torch.stack(last_c))


_INDEX_DTYPES = (torch.int64, torch.int32, torch.int16, torch.uint8)
