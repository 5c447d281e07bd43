"""The LSTM backends, by name: `BACKENDS[name](input_size, hidden_size, num_layers, dropout,
onehot=...)`. Each maps (B, T, in) floats or (B, T) one-hot ids and an optional state (h, c),
each (num_layers, B, H), to outputs (B, T, H) and the final state."""

from lyricgen.models.builtin import BuiltinLSTM
from lyricgen.models.scratch import ScratchLSTM

BACKENDS = {"scratch": ScratchLSTM, "builtin": BuiltinLSTM}
