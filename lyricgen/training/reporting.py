"""What a run tells as it goes: a line per epoch, metrics.jsonl, lr and early-stop messages,
greedy previews."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lyricgen.config import Config, SampleConfig, TrainConfig
from lyricgen.copies import CopyIndex
from lyricgen.data.corpus import Corpus
from lyricgen.device import resolve_device
from lyricgen.counts.mixing import Counts
from lyricgen.models.charlm import CharLM
from lyricgen.sampler import generate
from lyricgen.sizing import shown
from lyricgen.data.vocab import Vocab

Log = Callable[[str], None]  # where a run's lines go: print, typer.echo, or nowhere
PREVIEW = SampleConfig(length=50, greedy=True)  # the book previews 50 greedy characters
HEARTBEAT_S = 10.0  # without a progress bar, a line about this often while an epoch trains


class Reporter:
    """`writes=False` (the other processes of a run on several) makes it tell nothing."""

    def __init__(self, out: Path, log: Log, train: TrainConfig, writes: bool = True,
                 heartbeat: bool = False):
        self.metrics, self.train, self.writes = out / "metrics.jsonl", train, writes
        self.log = log if writes else (lambda message: None)
        self.heartbeat = heartbeat  # lines while an epoch trains (piped: no progress bar)
        self._beat = (0.0, 0, 0.0)  # the epoch's start: time, batches done; the last line's time

    def epoch_started(self, done: int) -> None:
        now = time.monotonic()
        self._beat = (now, done, now)

    def batches(self, title: str, done: int, total: int, ppl: float) -> None:
        """With `heartbeat`, every HEARTBEAT_S seconds or so: how far the epoch is, and how
        fast (a log or a pipe shows no bar, and an epoch can take minutes)."""
        began, first, last = self._beat
        now = time.monotonic()
        if self.heartbeat and now - last >= HEARTBEAT_S and done < total:
            tokens = (done - first) * self.train.batch_size * self.train.num_steps
            self.log(f"{title}: batch {done}/{total}, train ppl {ppl:.2f}, "
                     f"{tokens / max(now - began, 1e-9):,.0f} tok/s")
            self._beat = (began, first, now)

    def rewrite_metrics(self, history: list[dict[str, Any]]) -> None:
        """metrics.jsonl as the history says (a resumed run drops rows of lost epochs)."""
        if not self.writes:
            return
        with self.metrics.open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(row) + "\n" for row in history)

    def epoch(self, row: dict[str, Any], improved: bool) -> None:
        """Called after the epoch's checkpoint is saved: never a row for an unsaved epoch."""
        if not self.writes:
            return
        with self.metrics.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        self.log(format_row(row, self.train.epochs) + ("  *" if improved else ""))

    def lr_halved(self, lr: float, floor: bool = False) -> None:
        last = " (the last time: it is not halved below 1/1000 of the starting lr)"
        self.log(f"lr halved to {lr:.3g}" + (last if floor else ""))

    def strengthened(self, values: dict[str, float]) -> None:
        self.log("held-out figure stalled while the training figure fell: regularisation "
                 f"raised to {shown(values, list(values))}")

    def early_stop(self, bad_epochs: int, best: float, best_epoch: int) -> None:
        epochs = f"{bad_epochs} epoch" + ("" if bad_epochs == 1 else "s")
        self.log(f"early stop: no improvement for {epochs} (best {best:.2f} at epoch "
                 f"{best_epoch})")

    def preview(self, model: CharLM, corpus: Corpus, prefixes: list[str],
                counts: Counts | None = None) -> None:
        if not self.writes:
            return
        for line in preview(model, corpus.vocab, prefixes, counts, corpus.copies):
            self.log(f"  {line}")


def preview(model: CharLM, vocab: Vocab, prefixes: list[str], counts: Counts | None = None,
            guard: CopyIndex | None = None) -> list[str]:
    """Greedy continuations of each prefix (characters outside the vocab dropped) by the model
    as `sample` draws from it (`counts` mixed in, `guard` against copies), one line each,
    newlines shown as ' / '."""
    lines = []
    for prefix in prefixes:
        ids = vocab.encode(prefix, unknown="skip")
        if ids:
            text = vocab.decode(ids + generate(model, ids, PREVIEW, counts=counts, guard=guard)[0])
            lines.append(text.replace("\n", " / "))
    return lines


def format_row(row: dict[str, Any], epochs: int) -> str:
    val = f"{row['val_ppl']:9.2f}" if row["val_ppl"] is not None else "        -"
    if "val_ppl_plain" in row:
        val += f" (cache; no cache {row['val_ppl_plain']:.2f})"
    if "val_ppl_lstm" in row:
        val += f" (LSTM alone {row['val_ppl_lstm']:.2f})"
    return (f"epoch {row['epoch']:>4}/{epochs}  train ppl {row['train_ppl']:9.2f}  val ppl {val}"
            f"  {row['seconds']:6.1f}s  {row['tokens_per_s']:8,.0f} tok/s  lr {row['lr']:.3g}")


def model_line(cfg: Config) -> str:
    """Model size, corpus and device, in words."""
    m = cfg.model
    layers = f"{m.num_layers} layer{'s' if m.num_layers > 1 else ''} of {m.hidden_size} units"
    given = f"{m.embedding_size}-wide embedding" if m.input == "embedding" else "one-hot input"
    device = resolve_device(cfg.train.device)
    return f"{layers}, {given}; corpus {cfg.data.data}; on {device}"
