"""The LSTM cell's gate maths, the reference every path is checked against.

`lstm_cell` is one time step, gate by gate; `lstm_layer` runs it over a sequence under
autograd. The readable model (scratch.py) runs them; the fast paths (fast/) and the sampling
stepper (stepper.py) compute the same maths their own way and are tested against this one.
"""

from __future__ import annotations

import torch

from lyricgen.models.base import State


def lstm_cell(x_proj: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
              weight_hh: torch.Tensor) -> State:
    """One time step. x_proj (B, 4H) is W_ih x + b_ih + b_hh; h, c (B, H); weight_hh (4H, H)."""
    gates = x_proj + h @ weight_hh.t()  # all four gates' pre-activations: (B, 4H)
    i, f, g, o = gates.chunk(4, dim=1)
    i = torch.sigmoid(i)  # input gate: how much of the candidate enters the cell
    f = torch.sigmoid(f)  # forget gate: how much of the old cell is kept
    g = torch.tanh(g)  # cell candidate
    o = torch.sigmoid(o)  # output gate: how much of the cell is shown as h
    c = f * c + i * g
    h = o * torch.tanh(c)
    return h, c


def lstm_layer(x_proj: torch.Tensor, weight_hh: torch.Tensor, h: torch.Tensor, c: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The cell over every step of x_proj (T, B, 4H): the outputs (T, B, H) and the last c."""
    outputs = []
    for x_t in x_proj:
        h, c = lstm_cell(x_t, h, c, weight_hh)
        outputs.append(h)
    return torch.stack(outputs), c
