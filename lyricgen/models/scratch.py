"""An LSTM made by hand from nn.Parameter tensors, gate by gate: the one to read.

Parameters have the names, shapes, registration order and initialisation of `torch.nn.LSTM`
(see DESIGN.md), so a state_dict moves between this module and nn.LSTM unchanged:

    weight_ih_l{k} (4H, in)   weight_hh_l{k} (4H, H)   bias_ih_l{k} (4H)   bias_hh_l{k} (4H)

with the 4H rows in the order input gate i, forget gate f, cell candidate g, output gate o.

`lstm_cell` (cell.py) is the gate maths, and `lstm_layer` runs it over a sequence under autograd.
That is what runs unless `fast.choose` finds a faster path for the weights' device and dtype
(models/fast/: the same cell with a hand-written backward pass, its elementwise work compiled).
For speed the cell is written again in exactly three places, each checked against this one by
the tests (and the compiled ones again at first use); a change to the gate maths here must be
made there too:

    fast/lstm_step.c          C loops, forward and backward (float32 on the CPU)
    fast/triton_kernels.py    Triton kernels, forward and backward (float32 on CUDA)
    stepper.py                in-place PyTorch ops, forward only (sampling)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lyricgen.models import fast
from lyricgen.models.base import State, is_ids
from lyricgen.models.cell import lstm_layer
from lyricgen.models.lookup import column_lookup


class ScratchLSTM(nn.Module):
    """Multi-layer LSTM over (B, T, in) floats or, for one-hot input, (B, T) integer ids.

    `fast=False` always runs the readable `lstm_layer` (what the fast paths are tested against).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0, onehot: bool = False, fast: bool = True):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.dropout, self.fast = num_layers, dropout, fast
        gates = 4 * hidden_size
        for k in range(num_layers):
            layer_in = input_size if k == 0 else hidden_size
            w_ih = torch.empty(gates, layer_in)
            if k == 0 and onehot:  # shape (4H, V) as nn.LSTM's, stored column-major so that
                w_ih = torch.empty(layer_in, gates).t()  # its columns are rows of memory
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

    def forward(self, x: torch.Tensor, state: State | None = None,
                projection: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:
        """`projection` (V, 4H), with ids `x`: the first layer's x_proj for each id, looked up
        (inference's shortcut: CharLM.input_projection)."""
        B, T = x.shape[:2]
        if state is None:
            zeros = self.weight_hh_l0.new_zeros(self.num_layers, B, self.hidden_size)
            state = (zeros, zeros)
        path = fast.choose(self.weight_hh_l0) if self.fast else fast.READABLE
        run_layer = lstm_layer if path.kernels is None else path.run_layer
        layer_in = x.t() if is_ids(x) else x.transpose(0, 1)  # time-major: (T, B[, in])
        last_h, last_c = [], []
        for k in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self.layer(k)
            # W_ih x + b_ih + b_hh for every step at once: (T, B, 4H). W_ih times a one-hot
            # vector is a column of W_ih: a lookup, never a dense matmul.
            if k == 0 and projection is not None:
                x_proj = projection.index_select(0, layer_in.reshape(-1)).view(T, B, -1)
            elif is_ids(layer_in):
                x_proj = column_lookup(w_ih, layer_in.reshape(-1)).view(T, B, -1) + (b_ih + b_hh)
            else:
                x_proj = torch.addmm(b_ih + b_hh, layer_in.reshape(T * B, -1),
                                     w_ih.t()).view(T, B, -1)
            layer_in, c = run_layer(x_proj, w_hh, state[0][k], state[1][k])  # (T, B, H)
            last_h.append(layer_in[-1])
            last_c.append(c)
            if self.dropout and self.training and k < self.num_layers - 1:
                layer_in = F.dropout(layer_in, self.dropout, training=True)
        return layer_in.transpose(0, 1), (torch.stack(last_h), torch.stack(last_c))
