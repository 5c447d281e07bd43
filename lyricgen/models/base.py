"""What the LSTM backends share: the state they carry and how they tell ids from vectors.

A backend maps (B, T, in) floats, or (B, T) integer ids for one-hot input, and an optional
state (h, c), each (num_layers, B, H), to outputs (B, T, H) and the final state.
"""

from __future__ import annotations

import torch

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (num_layers, B, H)


def is_ids(x: torch.Tensor) -> bool:
    """Whether `x` holds character ids (one-hot input) rather than input vectors."""
    return not x.is_floating_point()
