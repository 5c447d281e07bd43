"""`torch.nn.LSTM` behind the backend interface: (B, T, in) floats or (B, T) one-hot ids."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lyricgen.models.scratch import State


class BuiltinLSTM(nn.LSTM):
    """nn.LSTM itself (so its parameter names are nn.LSTM's), batch first; it cannot look up a
    column for one-hot input, so ids are expanded to dense one-hot vectors first."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0, onehot: bool = False):
        super().__init__(input_size, hidden_size, num_layers, batch_first=True,
                         dropout=dropout if num_layers > 1 else 0.0)

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        if not x.is_floating_point():
            x = F.one_hot(x.long(), self.input_size).to(self.weight_ih_l0.dtype)  # (B, T, V)
        return super().forward(x, state)
