"""The training loop, read top to bottom in `Trainer.run`: the batches of each epoch through the
step; at each epoch's end validation, the schedule, a checkpoint and the report.

Every checkpoint records where training stands (Progress), so a run stopped at any batch
boundary (time limit, SIGINT, SIGTERM) resumes to exactly what an unbroken run gives.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from lyricgen import checkpoint
from lyricgen.checkpoint import Checkpoint, CheckpointError, first_line
from lyricgen.errors import Interrupted, LyricgenError
from lyricgen.evaluate import evaluate
from lyricgen.training.progress import Progress
from lyricgen.training.reporting import Log, Reporter
from lyricgen.training.schedule import Schedule
from lyricgen.training.setup import Setup, restore_optimizer

CHECK_EVERY = 16  # batches between syncs that read the loss (finite check, progress bar)


@dataclass
class TrainResult:
    history: list[dict[str, Any]]
    stop: str  # finished | early stop | time limit
    out: Path
    best_epoch: int


class Trainer:
    def __init__(self, setup: Setup, out: Path, log: Log = print, progress_bar: bool = True):
        self.setup, self.cfg, self.out = setup, setup.cfg, out
        self.progress_bar = progress_bar
        self.progress = Progress()
        self.history: list[dict[str, Any]] = []
        self.schedule = Schedule.of(self.cfg.train)
        self.report = Reporter(out, log, self.cfg.train)
        self.log = log

    # --- checkpoints ---------------------------------------------------------------------------

    def checkpoint(self) -> Checkpoint:
        s = self.setup
        rng = {"torch": torch.get_rng_state()}
        if s.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(s.device)
        return Checkpoint(self.cfg, s.corpus.vocab, s.corpus.sha256, s.model.state_dict(),
                          s.optimizer.state_dict(), self.progress, rng, self.history,
                          s.corpus.line_hashes)

    def restore(self, saved: Checkpoint) -> None:
        """Continue from `saved` (the caller checked that its corpus is this one)."""
        s = self.setup
        try:
            s.model.load_state_dict(saved.model)
            restore_optimizer(s.optimizer, saved.optimizer)
            torch.set_rng_state(saved.rng["torch"])
            if "cuda" in saved.rng and s.device.type == "cuda":
                torch.cuda.set_rng_state(saved.rng["cuda"], s.device)
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as e:
            raise CheckpointError(f"{saved.source} is damaged: its training state cannot be "
                                  f"restored ({type(e).__name__}: {first_line(e)})") from None
        self.progress, self.history = saved.progress, list(saved.history)

    def save(self, best: bool = False) -> None:
        # best.pt first: a crash between the two writes leaves last.pt one epoch behind (that
        # epoch is redone on resume) rather than a best.pt older than the best epoch.
        if best:
            checkpoint.save(self.checkpoint(), self.out / "best.pt")
            checkpoint.copy(self.out / "best.pt", self.out / "last.pt")
        else:
            checkpoint.save(self.checkpoint(), self.out / "last.pt")

    # --- the loop ------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        epochs = self.cfg.train.epochs
        self.report.rewrite_metrics(self.history)
        limit = self.cfg.train.time_limit
        deadline = time.monotonic() + limit * 60 if limit else math.inf
        stop = "finished"
        with stop_signals() as signals:
            while self.progress.epoch < epochs:
                epoch = self.progress.epoch + 1
                complete, stopped = self.train_epoch(epoch, deadline, signals)
                if complete and self.end_epoch(epoch):
                    stop = "early stop"
                    break
                if not stopped:
                    continue
                if not complete:
                    self.save(best=not (self.out / "best.pt").exists())
                where = f"epoch {self.progress.epoch + 1}, batch {self.progress.batch}" \
                    if not complete else f"the end of epoch {epoch}"
                if stopped == "time limit":
                    self.log(f"time limit reached at {where}; {self.out / 'last.pt'} holds it "
                             "(continue with --resume)")
                    stop = "time limit"
                    break
                raise Interrupted(f"interrupted by {stopped} at {where}; saved "
                                  f"{self.out / 'last.pt'}; continue with --resume",
                                  exit_code=130 if stopped == "SIGINT" else 143)
        return TrainResult(self.history, stop, self.out, self.progress.best_epoch)

    def train_epoch(self, epoch: int, deadline: float, signals: StopFlag
                    ) -> tuple[bool, str | None]:
        """Train the batches of `epoch` left to do; whether the epoch is complete, and why
        training must stop (time limit, a signal) if it must."""
        s, p = self.setup, self.progress
        batches = s.batches(epoch)
        losses = torch.zeros(len(batches), dtype=torch.float64, device=s.device)
        losses[: p.batch] = torch.tensor(p.batch_losses, dtype=torch.float64)
        hidden = tuple(h.to(s.device) for h in p.hidden) if p.hidden else None
        start, done, stopped = time.perf_counter(), p.batch, None
        s.model.train()
        bar = tqdm(total=len(batches), initial=done, desc=f"epoch {epoch}/{self.cfg.train.epochs}",
                   leave=False, disable=not self.progress_bar, dynamic_ncols=True)
        while done < len(batches) and not stopped:
            X, Y = batches.batch(done)  # (B, T) each
            if not batches.carries_state:
                hidden = None
            elif hidden is not None:
                hidden = (hidden[0].detach(), hidden[1].detach())  # truncated BPTT
            loss, hidden = s.step(X, Y, hidden)  # forward, backward, clip, update
            losses[done] = loss
            done += 1
            bar.update(1)
            if signals.raised or time.monotonic() > deadline:
                stopped = signals.raised or "time limit"
            if stopped or done - p.batch >= CHECK_EVERY or done == len(batches):
                self.check_finite(losses, p.batch, done, epoch)
                p.batch = done  # everything up to here is known to be finite
                bar.set_postfix(ppl=f"{perplexity(losses[:done].mean().item()):.2f}")
        bar.close()
        p.seconds += time.perf_counter() - start
        p.batch_losses = losses[:done].tolist()
        complete = done == len(batches)
        p.hidden = [h.detach().cpu() for h in hidden] \
            if not complete and batches.carries_state else None
        return complete, stopped

    def check_finite(self, losses: torch.Tensor, lo: int, hi: int, epoch: int) -> None:
        bad = (~torch.isfinite(losses[lo:hi])).nonzero()
        if len(bad):
            b = lo + int(bad[0])
            raise LyricgenError(
                f"the loss became {losses[b].item()} at epoch {epoch}, batch {b + 1}; training "
                f"stopped and the last good checkpoint in {self.out} is kept (epoch "
                f"{self.progress.epoch}); try a lower --lr or a smaller --clip")

    def end_epoch(self, epoch: int) -> bool:
        """Validation, the schedule, checkpoints and the report; True to stop early."""
        s, p, t = self.setup, self.progress, self.cfg.train
        train_loss = sum(p.batch_losses) / len(p.batch_losses)
        row = self.metrics(epoch, train_loss)
        self.history.append(row)
        monitored = row["val_ppl"] if row["val_ppl"] is not None else row["train_ppl"]
        decision = self.schedule.end_of_epoch(p, epoch, monitored, train_loss)
        if decision.halve_lr:
            for group in s.optimizer.param_groups:
                group["lr"] /= 2
            self.report.lr_halved(s.optimizer.param_groups[0]["lr"])
        p.start_next_epoch(epoch, train_loss)
        self.save(best=decision.improved)
        self.report.epoch(row, decision.improved)
        if t.preview_every and epoch % t.preview_every == 0:
            self.report.preview(s.model, s.corpus.vocab, t.prefix)
        if decision.stop:
            self.report.early_stop(p.bad_epochs, p.best, p.best_epoch)
        return decision.stop

    def metrics(self, epoch: int, train_loss: float) -> dict[str, Any]:
        """The epoch's row of metrics.jsonl, validation included."""
        s, p, t = self.setup, self.progress, self.cfg.train
        tokens = len(p.batch_losses) * t.batch_size * t.num_steps
        row = {"epoch": epoch, "train_ppl": perplexity(train_loss), "val_ppl": None,
               "seconds": p.seconds, "tokens_per_s": tokens / p.seconds,
               "lr": s.optimizer.param_groups[0]["lr"]}
        if len(s.corpus.val_ids):
            val = evaluate(s.model, s.corpus.val_ids, t.num_steps, cache=t.cache_eval)
            row["val_ppl"] = perplexity(val.loss if val.cache_loss is None else val.cache_loss)
            if val.cache_loss is not None:  # val_ppl is the cache figure
                row["val_ppl_plain"] = perplexity(val.loss)
        return row


def perplexity(loss: float) -> float:
    """exp(mean cross-entropy); inf rather than an overflow for a loss beyond float range."""
    return math.exp(loss) if loss < 709 else math.inf


class StopFlag:
    raised: str | None = None


@contextmanager
def stop_signals() -> Iterator[StopFlag]:
    """SIGINT / SIGTERM ask the loop to stop at the next batch boundary; a second SIGINT stops
    at once (the checkpoint on disk is still the previous, complete one)."""
    flag = StopFlag()

    def handler(signum, frame):
        if flag.raised and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag.raised = signal.Signals(signum).name

    try:
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals alone
        yield flag
        return
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
