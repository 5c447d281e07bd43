"""Where a training run stands: saved in every checkpoint, so that a run stopped at any batch
boundary resumes to exactly what an unbroken run gives."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


@dataclass
class Progress:
    epoch: int = 0  # epochs completed
    batch: int = 0  # batches done in epoch `epoch + 1` (non-zero only after a mid-epoch stop)
    batch_losses: list[float] = field(default_factory=list)  # of those batches
    hidden: list[torch.Tensor] | None = None  # the carried (h, c) at a mid-epoch stop
    seconds: float = 0.0  # spent on that epoch so far
    best: float = math.inf  # best monitored perplexity (validation, else training)
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since `best` improved (early stopping)
    plateau_epochs: int = 0  # likewise, for the plateau schedule
    prev_train_loss: float | None = None  # for the halve-on-increase schedule

    def start_next_epoch(self, finished: int, train_loss: float) -> None:
        self.epoch, self.batch, self.batch_losses, self.seconds = finished, 0, [], 0.0
        self.hidden, self.prev_train_loss = None, train_loss
