"""Regularisation measured on the corpus as training goes, not fixed by a rule beforehand.

The sizing rule (sizing.py) gives the strength a run starts at, from the corpus and the budget.
What a text needs shows only while it is read: when the network's held-out figure stalls while
its training figure still falls, it is fitting what does not carry over to new text (memorising
its training text), and the strength rises a step (dropout, embedding dropout and weight decay
together, those no option or preset key gave) where the plateau schedule would have halved the
lr. A stall with the training figure not falling is the lr's to answer, as before. The strength
is in Progress and the settings in force in the checkpoint's config, so a resumed run goes on
alike, and the same seed makes the same choices (they follow the figures).
"""

from __future__ import annotations

from lyricgen import sizing
from lyricgen.checkpoint import Progress
from lyricgen.training.setup import Setup

STEP = 0.25  # of the strength, from 0 (the lightest) to 1 (the Jay Chou preset's)


def strengthen(setup: Setup, p: Progress, epoch: int) -> dict[str, float]:
    """Raise `p`'s strength a step after `epoch` and put its settings in force in the model,
    the optimizer and the run's config; the new settings."""
    p.strength, p.strengthened_at = min(1.0, p.strength + STEP), epoch
    values = {k: v for k, v in sizing.settings(p.strength).items() if k in p.strengthening}
    setup.model.set_dropout(values.get("dropout"), values.get("embedding_dropout"))
    if "weight_decay" in values:
        for group in setup.optimizer.param_groups:
            group["weight_decay"] = values["weight_decay"]
    setup.cfg = sizing.with_settings(setup.cfg, values)
    return values
