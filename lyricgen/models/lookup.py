"""Rows of a table picked by ids, with a backward pass that is fast on the CPU: the embedding's
lookup, and a one-hot input's projection W_ih x (column x of W_ih)."""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


class RowLookup(torch.autograd.Function):
    """(table (V, G), ids (N,)) -> table[ids] (N, G), with a backward pass that adds the N
    gradient rows into a zero (V, G) table: an index_add, which on CPU is an order of magnitude
    faster than the dense embedding backward torch uses for F.embedding."""

    @staticmethod
    def forward(ctx, table, ids):
        ctx.save_for_backward(ids)
        ctx.rows = table.shape[0]
        return table.index_select(0, ids)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (ids,) = ctx.saved_tensors
        return grad.new_zeros(ctx.rows, grad.shape[1]).index_add_(0, ids, grad), None


def lookup_rows(table: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """table[ids]: through RowLookup when a gradient is wanted, else a plain index_select."""
    if torch.is_grad_enabled() and table.requires_grad:
        return RowLookup.apply(table, ids)
    return table.index_select(0, ids)


def column_lookup(weight: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """W x for one-hot vectors x, (weight (G, V), ids (N,)) -> (N, G): the columns of W.
    Fast when W is stored column-major, as ScratchLSTM stores a one-hot layer's W_ih: its
    columns are then contiguous rows of memory, and so are those of its gradient."""
    return lookup_rows(weight.t(), ids)
