"""`torch.nn.LSTM` behind the backend interface: (B, T, in) floats or (B, T) one-hot ids."""

from __future__ import annotations

import torch
from torch import nn

from lyricgen.models.base import State, is_ids


class BuiltinLSTM(nn.LSTM):
    """nn.LSTM itself (so its parameter names are nn.LSTM's). It runs time-major, its native
    layout (batch_first costs it transposing copies), and returns a (B, T, H) view. It cannot
    look up a column for one-hot input, so ids become dense one-hot vectors first."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0, onehot: bool = False):
        super().__init__(input_size, hidden_size, num_layers,
                         dropout=dropout if num_layers > 1 else 0.0)

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        if is_ids(x):  # (T, B, V), written straight as floats
            ids = x.t().long().unsqueeze(-1)
            x = ids.new_zeros(*ids.shape[:2], self.input_size, dtype=self.weight_ih_l0.dtype)
            x.scatter_(2, ids, 1.0)
        else:
            x = x.transpose(0, 1)  # (T, B, in)
        out, state = super().forward(x, state)  # (T, B, H)
        return out.transpose(0, 1), state
