"""A trained CharLM rearranged for sampling, one character per step, with as few tensor
operations per step as the LSTM allows.

Sampling runs one (N, 1) step at a time, where the model's `forward` spends most of its time
dispatching small operations, not multiplying. The weights are rearranged once instead:

- the input side of layer 0 becomes a (V, 4H) table, row v = W_ih x(v): a column of W_ih for
  one-hot input, the embedding row times W_ih for embedding input (folded once: the step
  then reads one row instead of all of W_ih);
- each layer's recurrent product W_hh h + b_ih + b_hh is computed right after h, as one matmul
  with a constant 1 appended to h (that row of the matrix holds the biases); on the last layer
  the same matmul also yields the output logits (W_out h + b), since both multiply the same h;
- every step writes into buffers made once, through views made once.

Both backends hold nn.LSTM's parameters (names, shapes, gate order i, f, g, o), so one stepper
serves both. Its step is cell.lstm_cell's maths (the reference; change both together).
"""

from __future__ import annotations

import torch

from lyricgen.models.base import State
from lyricgen.models.charlm import CharLM


class Stepper:
    """`step(ids)` advances N streams by one character each and returns the logits (N, V) for
    the next one; `logits` holds the current ones. Built from a model and its state after a
    warm-up (h, c: (L, N, H) each).

    Inside, vectors are columns (H, N), weights on the left: MKL runs W (4H, H) @ h (H, N)
    faster than h (N, H) @ W^T for tens of streams (it parallelises the long side better;
    benchmarks/RESULTS.md, sampling speed), and every gate is then a contiguous block of rows.
    """

    def __init__(self, model: CharLM, state: State):
        rnn, head = model.rnn, model.head
        H, L = model.cfg.hidden_size, model.cfg.num_layers
        w_out = head.weight if model.proj is None else head.weight @ model.proj.weight  # (V, H)
        self.layers = []
        for k in range(L):
            w_ih, w_hh = getattr(rnn, f"weight_ih_l{k}"), getattr(rnn, f"weight_hh_l{k}")
            bias = getattr(rnn, f"bias_ih_l{k}") + getattr(rnn, f"bias_hh_l{k}")
            # Columns of `after`: h's multipliers, then the constant 1's (biases): (4H [+ V], H + 1)
            after = torch.cat([w_hh, bias.unsqueeze(1)], 1)
            if k == L - 1:
                after = torch.cat([after, torch.cat([w_out, head.bias.unsqueeze(1)], 1)])
            self.layers.append(_Layer(state[0][k], state[1][k], after,
                                      None if k == 0 else w_ih))
        if model.embedding is None:
            self.table = rnn.weight_ih_l0.t().contiguous()  # (V, 4H): row v = column v of W_ih
        else:
            self.table = model.embedding.weight @ rnn.weight_ih_l0.t()  # (V, 4H)
        for layer in self.layers:  # the products of the warm-up state
            torch.mm(layer.after, layer.h_one, out=layer.out)
        self.logits = self.layers[-1].out[4 * H:].t()  # (N, V)

    def columns(self) -> list[torch.Tensor]:
        """The buffers that hold the streams' state, a column per stream (`logits` is read from
        them). Copying columns out and back forks, keeps or rewinds streams."""
        return [t for layer in self.layers for t in (layer.h_one, layer.c, layer.out)]

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Feed ids (N,); return the logits for the character after them (N, V)."""
        x = self.table.index_select(0, ids).t()  # (4H, N): W_ih x for layer 0
        below = None
        for layer in self.layers:
            if below is None:
                torch.add(layer.recurrent, x, out=layer.gates)
            else:
                torch.addmm(layer.recurrent, layer.w_ih, below, out=layer.gates)
            layer.i_f.sigmoid_()
            layer.g.tanh_()
            layer.o.sigmoid_()
            layer.c.mul_(layer.f).addcmul_(layer.i, layer.g)  # c = f * c + i * g
            torch.tanh(layer.c, out=layer.tanh_c)
            torch.mul(layer.o, layer.tanh_c, out=layer.h)  # h = o * tanh(c)
            torch.mm(layer.after, layer.h_one, out=layer.out)  # next W_hh h + b [, logits]
            below = layer.h
        return self.logits


class _Layer:
    """One layer's rearranged weights and its step buffers (N columns each)."""

    def __init__(self, h: torch.Tensor, c: torch.Tensor, after: torch.Tensor,
                 w_ih: torch.Tensor | None):
        N, H = h.shape
        # Stored transposed for one stream: that matrix-vector product runs the faster.
        self.after = after.t().contiguous().t() if N == 1 else after.contiguous()
        self.w_ih = w_ih
        self.h_one = h.new_ones(H + 1, N)  # [h; 1]
        self.h = self.h_one[:H]
        self.h.copy_(h.t())
        self.c = c.t().clone(memory_format=torch.contiguous_format)
        self.out = h.new_empty(after.shape[0], N)  # [W_hh h + b (4H); logits (V) on the last]
        self.recurrent = self.out[:4 * H]
        self.gates = h.new_empty(4 * H, N)
        self.i, self.f, self.g, self.o = self.gates.chunk(4)
        self.i_f = self.gates[:2 * H]
        self.tanh_c = torch.empty_like(self.c)
