"""An epoch's row of metrics.jsonl: what training did, and the held-out figures (evaluate.py)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NoReturn

from lyricgen.checkpoint import Progress
from lyricgen.evaluate import evaluate, perplexity
from lyricgen.training.setup import Setup


def epoch_row(s: Setup, p: Progress, epoch: int, train_loss: float,
              diverged: Callable[[str], NoReturn]) -> dict[str, Any]:
    """The row of `epoch`, validation included; `diverged` stops a run whose held-out loss
    is not finite."""
    t = s.cfg.train
    tokens = len(p.batch_losses) * t.batch_size * t.num_steps
    row = {"epoch": epoch, "train_ppl": perplexity(train_loss), "val_ppl": None,
           "seconds": p.seconds, "tokens_per_s": tokens / p.seconds,
           "lr": s.optimizer.param_groups[0]["lr"]}
    if p.strengthening:  # the regularisation's strength the epoch trained at
        row["strength"] = round(p.strength, 3)
    if len(s.corpus.val_ids):
        # In rank 0 alone under torchrun (cut into rows, it would lose the carried state).
        began = time.perf_counter()
        val = evaluate(s.model, s.corpus.val_ids, t.num_steps, cache=t.cache_eval,
                       counts=s.counts, newline=s.corpus.vocab.index.get("\n"))
        row["val_seconds"] = time.perf_counter() - began
        if not math.isfinite(val.loss):  # finite weights whose products overflow
            diverged(f"the validation loss became {val.loss} at epoch {epoch}")
        row["val_ppl"] = perplexity(val.loss if val.cache_loss is None else val.cache_loss)
        if val.cache_loss is not None:  # val_ppl is the cache figure
            row["val_ppl_plain"] = perplexity(val.loss)
        if val.count_weights is not None:  # the LSTM's own figure, and what it learned
            row["val_ppl_lstm"] = perplexity(val.lstm_loss)
            row["count_weights"] = [[round(w, 4) for w in level] for level in val.count_weights]
    return row


def cut_row(s: Setup, p: Progress, epoch: int, batches: int, spare: float,
            diverged: Callable[[str], NoReturn]) -> dict[str, Any] | None:
    """The row of `epoch` cut after `p.batch` of its `batches`, its epoch a fraction (1.25 is a
    quarter into epoch 2); None if there is no held-out text, or if the epoch trained for less
    than the `spare` seconds validating it would take (a limit reached as the epoch began). It
    stays out of the history a resumed run continues, which so gives what an unbroken run
    gives."""
    if not p.batch or not len(s.corpus.val_ids) or p.seconds < spare:
        return None
    row = epoch_row(s, p, epoch, sum(p.batch_losses) / len(p.batch_losses), diverged)
    return {**row, "epoch": round(epoch - 1 + p.batch / batches, 3)}
