"""CharLM: input (one-hot | embedding) -> LSTM backend -> dropout -> linear head; and its
settings, ModelConfig."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn

from lyricgen.errors import check, check_int
from lyricgen.models import BACKENDS
from lyricgen.models.base import State
from lyricgen.models.lookup import lookup_rows
from lyricgen.models.scratch import ScratchLSTM


@dataclass
class ModelConfig:
    backend: str = "scratch"  # a name in BACKENDS
    input: Literal["onehot", "embedding"] = "embedding"
    embedding_size: int = 512
    hidden_size: int = 512
    num_layers: int = 1
    dropout: float = 0.65
    embedding_dropout: float = 0.25
    tie_weights: bool = True  # the output layer reuses the embedding (embedding input only)
    init: Literal["uniform", "normal"] = "uniform"  # normal = the book's N(0, 0.01), zero biases
    # Counts of the training text mixed with the LSTM (ngram.py, mixing.py): the highest order,
    # each from 2 up to it mixed; 0 for the LSTM alone. (CharLM is the LSTM; the counts are
    # made from the corpus.)
    ngram_order: int = 5

    def validate(self) -> None:
        check(self.backend in BACKENDS, "backend", f"must be one of {', '.join(BACKENDS)}")
        for name in ("embedding_size", "hidden_size", "num_layers"):
            check_int(self, name, 1)
        check(self.ngram_order == 0 or 2 <= self.ngram_order <= 8, "ngram_order",
              "must be 0 (no counts) or from 2 to 8")
        for name in ("dropout", "embedding_dropout"):
            check(0.0 <= getattr(self, name) < 1.0, name, "must be in [0, 1)")

    def parameter_count(self, vocab_size: int) -> int:
        """CharLM's parameters, counted as it makes them (V vocabulary, E embedding, H hidden):
        the embedding V E; per layer nn.LSTM's W_ih 4H x in, W_hh 4H x H and two biases 4H,
        `in` being E (V for one-hot input) for the first layer and H above; with tied weights
        and E != H the projection H E; the head V x (E if tied, else H) plus V, shared with the
        embedding when tied."""
        V, E, H = vocab_size, self.embedding_size, self.hidden_size
        embedding = self.input == "embedding"
        tied = self.tie_weights and embedding
        first_in = E if embedding else V
        lstm = 4 * H * (first_in + H + 2) + (self.num_layers - 1) * 4 * H * (2 * H + 2)
        proj = H * E if tied and E != H else 0
        head = (0 if tied else V * H) + V
        return (V * E if embedding else 0) + lstm + proj + head


class CharLM(nn.Module):
    def __init__(self, vocab_size: int, cfg: ModelConfig):
        super().__init__()
        self.vocab_size, self.cfg = vocab_size, cfg
        # Construction order (embedding, rnn, head) fixes the order random numbers are drawn
        # in, so the same seed gives the same weights whichever backend is chosen.
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_size) \
            if cfg.input == "embedding" else None
        rnn_in = cfg.embedding_size if self.embedding is not None else vocab_size
        self.rnn = BACKENDS[cfg.backend](rnn_in, cfg.hidden_size, cfg.num_layers, cfg.dropout,
                                         onehot=self.embedding is None)
        self.drop = LockedDropout(cfg.dropout)
        self.embedding_drop = CharacterDropout(cfg.embedding_dropout, vocab_size)
        # Tying (embedding input only): the output layer is the embedding matrix, so rare
        # characters learn from both ends of the model; a projection bridges differing sizes.
        tied = cfg.tie_weights and self.embedding is not None
        self.proj = nn.Linear(cfg.hidden_size, cfg.embedding_size, bias=False) \
            if tied and cfg.embedding_size != cfg.hidden_size else None
        self.head = nn.Linear(cfg.embedding_size if tied else cfg.hidden_size, vocab_size)
        if tied:
            with torch.no_grad():  # start as the output layer would: N(0, 1) logits explode
                self.embedding.weight.copy_(self.head.weight)
            self.head.weight = self.embedding.weight
        if cfg.init == "normal":
            self._init_normal()

    def vocab_dims(self) -> dict[str, int]:
        """The weights with a row (or a column) per character: name -> that dimension."""
        dims = {"head.weight": 0, "head.bias": 0}
        if self.embedding is not None:
            dims["embedding.weight"] = 0
        else:
            dims["rnn.weight_ih_l0"] = 1  # W_ih (4H, V) of one-hot input
        return dims

    def _init_normal(self) -> None:
        # The book's scratch model: weights N(0, 0.01), biases 0.
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.startswith("embedding"):
                    continue
                if "bias" in name:
                    p.zero_()
                else:  # drawn in logical order, whatever the memory layout (as scratch's)
                    p.copy_(p.new_empty(p.shape).normal_(0.0, 0.01))

    def set_dropout(self, dropout: float | None = None,
                    embedding_dropout: float | None = None) -> None:
        """Change the dropout in force (the run's regularisation rising as it trains); None
        leaves one as it is."""
        if dropout is not None:
            self.drop.p = dropout
            if self.cfg.num_layers > 1:  # between layers (nn.LSTM's and scratch's attribute)
                self.rnn.dropout = dropout
        if embedding_dropout is not None:
            self.embedding_drop.p = embedding_dropout
        self.cfg = replace(self.cfg, dropout=self.drop.p,
                           embedding_dropout=self.embedding_drop.p)

    def forward(self, ids: torch.Tensor, state: State | None = None
                ) -> tuple[torch.Tensor, State]:
        features, state = self.features(ids, state)
        return self.logits(features), state  # (B, T, V)

    def features(self, ids: torch.Tensor, state: State | None = None,
                 projection: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:
        """The last LSTM layer's outputs (B, T, H) for ids (B, T), and the final state.
        `projection`: `input_projection()`'s table, for inference."""
        if projection is not None:
            return self.rnn(ids, state, projection)
        x = ids
        if self.embedding is not None:  # nn.Embedding's weight, through the fast lookup
            rows = lookup_rows(self.embedding.weight, ids.reshape(-1))
            x = self.embedding_drop(rows.view(*ids.shape, -1), ids)  # (B, T, E)
        return self.rnn(x, state)

    def input_projection(self) -> torch.Tensor | None:
        """W_ih e + b_ih + b_hh of the first LSTM layer for each character's embedding e:
        (V, 4H). Where the embedding's dropout is off (inference) a lookup in it gives every
        step's projection, for V rows of matmul instead of one per step. None where the
        backend cannot take it (nn.LSTM) or the input is one-hot (a lookup already)."""
        if self.embedding is None or not isinstance(self.rnn, ScratchLSTM):
            return None
        w_ih, _, b_ih, b_hh = self.rnn.layer(0)
        return torch.addmm(b_ih + b_hh, self.embedding.weight, w_ih.t())

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """(..., H) -> (..., V); as rows, so that the bias is added inside the matmul."""
        x = self.drop(features).flatten(0, -2)
        logits = self.head(x if self.proj is None else self.proj(x))
        return logits.view(*features.shape[:-1], logits.shape[-1])

    def begin_state(self, batch_size: int) -> State:
        w = self.head.weight
        zeros = w.new_zeros(self.cfg.num_layers, batch_size, self.cfg.hidden_size)
        return zeros, zeros.clone()


class LockedDropout(nn.Module):
    """Dropout with one mask per sequence, the same at every time step (variational dropout,
    as in AWD-LSTM); it also draws T times fewer random numbers than plain dropout."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, H)
        if not self.training or not self.p:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(keep).div_(keep)
        return x * mask


class CharacterDropout(nn.Module):
    """Drops whole characters: for a batch, each vocabulary entry's embedding is zeroed with
    probability p wherever it occurs (embedding dropout, as in AWD-LSTM)."""

    def __init__(self, p: float, vocab_size: int):
        super().__init__()
        self.p, self.vocab_size = p, vocab_size

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:  # (B, T, E)
        if not self.training or not self.p:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty(self.vocab_size).bernoulli_(keep).div_(keep)
        return x * mask[ids].unsqueeze(-1)
