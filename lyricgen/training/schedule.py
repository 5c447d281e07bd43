"""The decisions at each epoch's end: did the monitored perplexity improve, is the lr halved,
does training stop early. Their counters live in Progress, so a resumed run decides alike."""

from __future__ import annotations

from dataclasses import dataclass

from lyricgen.config import TrainConfig
from lyricgen.training.progress import Progress


@dataclass(frozen=True)
class Decision:
    improved: bool  # the monitored perplexity is the best so far (best.pt is this epoch's)
    halve_lr: bool
    stop: bool  # early stopping


@dataclass(frozen=True)
class Schedule:
    """`halve`: halve the lr when an epoch's training loss rose; `plateau`: after
    `plateau_patience` epochs without improvement. Stop after `patience` such epochs (0: never)."""

    lr_schedule: str = "none"
    plateau_patience: int = 1
    patience: int = 0

    @classmethod
    def of(cls, t: TrainConfig) -> Schedule:
        return cls(t.lr_schedule, t.plateau_patience, t.patience)

    def end_of_epoch(self, p: Progress, epoch: int, monitored: float, train_loss: float
                     ) -> Decision:
        """Update `p`'s counters with this epoch's figures; what follows from them."""
        improved = monitored < p.best
        if improved:
            p.best, p.best_epoch, p.bad_epochs, p.plateau_epochs = monitored, epoch, 0, 0
        else:
            p.bad_epochs += 1
            p.plateau_epochs += 1
        rose = p.prev_train_loss is not None and train_loss > p.prev_train_loss
        halve = (self.lr_schedule == "halve" and rose) or \
            (self.lr_schedule == "plateau" and p.plateau_epochs >= self.plateau_patience)
        if halve:
            p.plateau_epochs = 0
        stop = bool(self.patience) and p.bad_epochs >= self.patience
        return Decision(improved, halve, stop)
