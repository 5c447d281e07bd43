"""The LSTM backends, by name: `BACKENDS[name](input_size, hidden_size, num_layers, dropout,
onehot=...)`, each as models/base.py describes; and the character model around them."""

from lyricgen.models.builtin import BuiltinLSTM
from lyricgen.models.scratch import ScratchLSTM

BACKENDS = {"scratch": ScratchLSTM, "builtin": BuiltinLSTM}
