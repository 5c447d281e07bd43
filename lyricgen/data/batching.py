"""Mini-batches of (X, Y) windows, Y = X shifted by one character, as (B, T) int64 tensors.

Batches are indexable (`batch(i)`), so a run interrupted mid-epoch resumes at the same batch.
"""

from __future__ import annotations

from typing import Protocol

import torch

from lyricgen.errors import LyricgenError, plural


class Batches(Protocol):
    carries_state: bool  # whether the LSTM state flows from batch i to batch i + 1

    def __len__(self) -> int: ...

    def batch(self, i: int) -> tuple[torch.Tensor, torch.Tensor]: ...


class AdjacentBatches:
    """The book's `data_iter_consecutive`: the stream laid out as B parallel rows, batch i the
    columns [iT, iT + T) of every row, so row b of batch i + 1 continues row b of batch i; the
    final partial window is dropped, as the book does.
    """

    carries_state = True

    def __init__(self, ids: torch.Tensor, batch_size: int, num_steps: int,
                 device: torch.device | str = "cpu"):
        row_len = len(ids) // batch_size
        self.rows = ids[: batch_size * row_len].view(batch_size, row_len).to(device)  # (B, L)
        self.num_steps = num_steps
        targets = row_len - 1
        self.num_batches = targets // num_steps
        if self.num_batches < 1:
            needed = batch_size * (num_steps + 1)
            raise LyricgenError(
                f"the text is too short for one batch: {plural(len(ids), 'character')}, but batch size "
                f"{batch_size} x {num_steps} steps needs at least {needed}; "
                "use more text or lower --batch-size / --num-steps")

    def __len__(self) -> int:
        return self.num_batches

    def batch(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= i < self.num_batches:
            raise IndexError(i)
        start = i * self.num_steps
        window = self.rows[:, start: start + self.num_steps + 1].long()  # (B, T + 1)
        return window[:, :-1], window[:, 1:]


class RandomBatches:
    """The book's `data_iter_random`: non-overlapping windows of T + 1 characters at random
    positions (a fresh order each epoch from `generator`); the state is reset for every batch."""

    carries_state = False

    def __init__(self, ids: torch.Tensor, batch_size: int, num_steps: int,
                 device: torch.device | str = "cpu", generator: torch.Generator | None = None):
        num_windows = (len(ids) - 1) // num_steps
        self.num_batches = num_windows // batch_size
        if self.num_batches < 1:
            raise LyricgenError(
                f"the text is too short for one batch: {plural(len(ids), 'character')}, but batch size "
                f"{batch_size} x {num_steps} steps needs at least {batch_size * num_steps + 1}; "
                "use more text or lower --batch-size / --num-steps")
        self.ids = ids.to(device)
        self.batch_size, self.num_steps = batch_size, num_steps
        order = torch.randperm(num_windows, generator=generator)[: self.num_batches * batch_size]
        self.starts = (order * num_steps).view(self.num_batches, batch_size).to(device)  # (N, B)
        self.offsets = torch.arange(num_steps + 1, device=device)

    def __len__(self) -> int:
        return self.num_batches

    def batch(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= i < self.num_batches:
            raise IndexError(i)
        window = self.ids[self.starts[i, :, None] + self.offsets].long()  # (B, T + 1)
        return window[:, :-1], window[:, 1:]


class RowShard:
    """Rows `rows` of every batch of `batches`: one process's share when several train."""

    def __init__(self, batches: Batches, rows: slice):
        self.batches, self.rows = batches, rows
        self.carries_state = batches.carries_state

    def __len__(self) -> int:
        return len(self.batches)

    def batch(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        X, Y = self.batches.batch(i)
        return X[self.rows], Y[self.rows]


def make_batches(ids: torch.Tensor, batch_size: int, num_steps: int, sampling: str,
                 device: torch.device | str, generator: torch.Generator) -> Batches:
    if sampling == "random":
        return RandomBatches(ids, batch_size, num_steps, device, generator)
    return AdjacentBatches(ids, batch_size, num_steps, device)
