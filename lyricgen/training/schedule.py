"""The decisions at each epoch's end: is this epoch's network the best to sample from (best.pt),
is the lr halved, does training stop early. Two figures decide: best.pt follows the model
`sample` draws from (`sampled_figure`); the schedule and early stopping follow the network's
own learning (`learning_figure`), which the counts and the cache can hide (on a small text the
cache's figure is best while the network is worst; on the lyrics the counts' mixture flattens
while the network still learns). When that figure stalls while the training figure falls, the
regularisation rises (regularising.py) where the plateau schedule would halve the lr. Their
counters live in Progress, so a resumed run decides alike."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lyricgen.config import TrainConfig
from lyricgen.checkpoint import Progress


@dataclass(frozen=True)
class Decision:
    improved: bool  # the sampled figure is the best so far (best.pt is this epoch's)
    halve_lr: bool
    stop: bool  # early stopping
    strengthen: bool = False  # raise the regularisation a step (regularising.py)


# The lr is never halved below this fraction of the run's starting lr: nine halvings at most.
# Without a floor, the plateau schedule with early stopping off (--patience 0) would halve it
# every epoch, to nothing (2.4e-10 by epoch 64 from 0.002), an lr that no longer trains.
MIN_LR_FRACTION = 1e-3
SETTLING_EPOCHS = 3  # epochs from one rise of the regularisation to the next, at least


@dataclass(frozen=True)
class Schedule:
    """`halve`: halve the lr when an epoch's training loss rose; `plateau`: after
    `plateau_patience` epochs without improvement; either, never below `min_lr`. Stop after
    `patience` epochs without improvement (0: never)."""

    lr_schedule: str = "none"
    plateau_patience: int = 1
    patience: int = 0
    min_lr: float = 0.0

    @classmethod
    def of(cls, t: TrainConfig) -> Schedule:
        return cls(t.lr_schedule, t.plateau_patience, t.patience, t.lr * MIN_LR_FRACTION)

    def can_halve(self, lr: float) -> bool:
        return lr / 2 >= self.min_lr

    def end_of_epoch(self, p: Progress, epoch: int, monitored: float, train_loss: float,
                     lr: float = math.inf, learning: float | None = None) -> Decision:
        """Update `p`'s counters with this epoch's figures, `monitored` for best.pt and
        `learning` (by default the same) for the schedule, and the lr it ran with; what follows
        from them. The first epoch is the best so far whatever its figure (an overflowing
        perplexity is inf), so that best.pt exists once an epoch has ended."""
        learning = monitored if learning is None else learning
        improved = monitored < p.best or p.best_epoch == 0
        if improved:
            p.best, p.best_epoch = monitored, epoch
        if learning < p.learned or epoch == 1:
            p.learned, p.bad_epochs, p.plateau_epochs = learning, 0, 0
        else:
            p.bad_epochs += 1
            p.plateau_epochs += 1
        rose = p.prev_train_loss is not None and train_loss > p.prev_train_loss
        fell = p.prev_train_loss is not None and train_loss < p.prev_train_loss
        stalled = p.plateau_epochs >= self.plateau_patience
        # Held out no better while the training text is fit ever better: it memorises. (Judged
        # from the third epoch at a strength: the first after a rise fits its text worse, so
        # the second fits it better whatever the network does.)
        strengthen = stalled and fell and can_strengthen(p) and \
            epoch - p.strengthened_at >= SETTLING_EPOCHS
        halve = not strengthen and ((self.lr_schedule == "halve" and rose) or
                                    (self.lr_schedule == "plateau" and stalled))
        if halve or strengthen:
            p.plateau_epochs = 0
        stop = bool(self.patience) and p.bad_epochs >= self.patience
        return Decision(improved, halve and self.can_halve(lr), stop, strengthen)

    @staticmethod
    def keep_if_best(p: Progress, row: dict[str, Any] | None) -> bool:
        """Whether best.pt takes the network of an epoch the time limit cut (its `row`); the
        schedule's counters are left as they are."""
        if row is None or not sampled_figure(row) < p.best:
            return False
        p.best, p.best_epoch = sampled_figure(row), row["epoch"]
        return True


def can_strengthen(p: Progress) -> bool:
    """Whether the run has regularisation left to raise (regularising.py)."""
    return bool(p.strengthening) and p.strength < 1.0


def sampled_figure(row: dict[str, Any]) -> float:
    """The figure best.pt, the schedule and early stopping follow: that of the model `sample`
    draws from, the LSTM with the counts and without the cache (the cache's figure, which can
    be best when the network is worst, is reported beside it); without validation, training's."""
    if row["val_ppl"] is None:
        return row["train_ppl"]
    return row.get("val_ppl_plain", row["val_ppl"])


def learning_figure(row: dict[str, Any]) -> float:
    """The figure the lr schedule and early stopping follow: the network's own, the LSTM alone
    where counts are mixed in, else the sampled one."""
    return row.get("val_ppl_lstm", sampled_figure(row))
