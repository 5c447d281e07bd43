"""The training loop, read top to bottom in `Trainer.run`: the batches of each epoch through the
step; at each epoch's end validation, the schedule, a checkpoint and the report.

Every checkpoint records where training stands (Progress), so a run stopped at any batch
boundary (time limit, SIGINT, SIGTERM) resumes to exactly what an unbroken run gives.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import torch
from tqdm import tqdm

from lyricgen import checkpoint
from lyricgen.checkpoint import Checkpoint, CheckpointError, Progress
from lyricgen.config import Config
from lyricgen.errors import LyricgenError, first_line
from lyricgen.evaluate import perplexity
from lyricgen.training import regularising
from lyricgen.training.distributed import contact
from lyricgen.training.reporting import Log, Reporter
from lyricgen.training.schedule import Schedule, learning_figure, sampled_figure
from lyricgen.training.signals import StopFlag, stop_signals
from lyricgen.training.setup import Setup, restore_optimizer
from lyricgen.training.validation import cut_row, epoch_row

CHECK_EVERY = 16  # batches between syncs that read the loss (finite check, progress bar)
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}  # the shell's 128 + signal number


@dataclass
class TrainResult:
    history: list[dict[str, Any]]
    stop: str  # finished | early stop | time limit | interrupted by SIGINT (or SIGTERM)
    out: Path
    best_epoch: float  # a fraction when best.pt holds an epoch the time limit cut
    exit_code: int = 0  # 130 / 143 after SIGINT / SIGTERM: a clean stop, but not the end
    partial: dict[str, Any] | None = None  # the row of an epoch cut by the time limit
    reported: bool = True  # False in the other processes of a run on several: rank 0 tells


class Trainer:
    def __init__(self, setup: Setup, out: Path, log: Log = print, progress_bar: bool = True):
        self.setup, self.out = setup, out
        self.progress_bar = progress_bar
        self.progress = Progress()
        self.history: list[dict[str, Any]] = []
        self.schedule = Schedule.of(self.cfg.train)
        self.world = setup.world  # with several processes, rank 0 alone reports and writes
        self.report = Reporter(out, log, self.cfg.train, writes=self.world.main,
                               heartbeat=not progress_bar)
        self.bar: tqdm | None = None  # the epoch's progress bar, and its title
        self.bar_title = ""
        self.saved: str | None = None  # where the run stood at the last checkpoint written
        self.partial: dict[str, Any] | None = None  # the row of an epoch cut by the time limit
        self.epoch_batches = 0  # in the epoch under way

    @property
    def cfg(self) -> Config:
        """The run's settings, the regularisation in force included (regularising.py)."""
        return self.setup.cfg

    def checkpoint(self) -> Checkpoint:
        """What a checkpoint holds (every process calls it: the RNG states are gathered)."""
        s = self.setup
        return Checkpoint(self.cfg, s.corpus.vocab, s.corpus.sha256, s.model.state_dict(),
                          s.optimizer.state_dict(), self.progress,
                          self.world.rng_state(s.device), self.history, s.corpus.kept_ids,
                          s.saved_counts([*self.history, self.partial or {}]))

    def restore(self, saved: Checkpoint) -> None:
        """Continue from `saved` (the caller checked that its corpus is this one)."""
        s = self.setup
        try:
            s.model.load_state_dict(saved.model)
            restore_optimizer(s.optimizer, saved.optimizer)
            self.world.set_rng_state(saved.rng, s.device)
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as e:
            raise CheckpointError(f"{saved.source} is damaged: its training state cannot be "
                                  f"restored ({type(e).__name__}: {first_line(e)})") from None
        self.progress, self.history = saved.progress, list(saved.history)
        self.saved = self.position()

    def save(self, best: bool = False) -> None:
        # Only finite weights are ever written: a checkpoint is something to come back to.
        if not self.setup.finite():
            self.diverged(f"the weights became non-finite (inf or nan) by {self.position()}")
        self.status("saving")
        state = self.checkpoint()
        self.saved = self.position()
        if not self.world.main:
            return
        # best.pt first: a crash between the two writes leaves last.pt one epoch behind (that
        # epoch is redone on resume) rather than a best.pt older than the best epoch.
        if best:
            checkpoint.save(state, self.out / "best.pt")
            checkpoint.copy(self.out / "best.pt", self.out / "last.pt")
        else:
            checkpoint.save(state, self.out / "last.pt")

    def position(self) -> str:
        p = self.progress
        return f"epoch {p.epoch + 1}, batch {p.batch}" if p.batch else f"epoch {p.epoch}"

    def diverged(self, what: str) -> NoReturn:
        """Stop a run gone non-finite, saying truly what is kept."""
        kept = (f"{self.out / 'last.pt'} from {self.saved} is kept" if self.saved else
                "no checkpoint was written")
        hint = "set --clip (1.0, say) or lower --lr" if not self.cfg.train.clip else \
            "try a lower --lr or a smaller --clip"
        raise LyricgenError(f"{what}; training stopped and {kept}; {hint}")

    def status(self, state: str) -> None:
        """What the progress bar shows while no batch runs (validating, saving)."""
        if self.bar is not None:
            self.bar.set_description(f"{self.bar_title} {state}")

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def run(self) -> TrainResult:
        epochs = self.cfg.train.epochs
        self.report.rewrite_metrics(self.history)
        deadline = time.monotonic() + (self.cfg.train.time_limit or math.inf) * 60
        stop, exit_code = "finished", 0
        with stop_signals() as signals:
            while self.progress.epoch < epochs:
                epoch = self.progress.epoch + 1
                # Time to validate an epoch the time limit cuts: what the last validation took.
                spare = self.history[-1].get("val_seconds", 0.0) if self.history else 0.0
                try:
                    complete, stopped = self.train_epoch(epoch, deadline - spare, signals)
                    if complete and self.end_epoch(epoch):
                        stop = "early stop"
                        break
                    if stopped and not complete:
                        if stopped == "time limit" and self.setup.finite():  # else save says
                            self.partial = self.world.from_main(lambda: cut_row(
                                self.setup, self.progress, epoch, self.epoch_batches, spare,
                                self.diverged))
                        improved = self.schedule.keep_if_best(self.progress, self.partial)
                        self.save(best=improved or not (self.out / "best.pt").exists())
                        self.close_bar()  # before the row's line
                        if self.partial:
                            self.report.epoch(self.partial, improved)
                finally:
                    self.close_bar()
                if not stopped:
                    continue
                where = self.position() if not complete else f"the end of epoch {epoch}"
                # A signal is a normal stop, as the time limit is, with the shell's exit code.
                stop = "time limit" if stopped == "time limit" else f"interrupted by {stopped}"
                exit_code = EXIT_CODES.get(stopped, 0)
                self.report.log(f"{'time limit reached' if stopped == 'time limit' else stop} at "
                         f"{where}; {self.out / 'last.pt'} holds it (continue with --resume)")
                break
        return TrainResult(self.history, stop, self.out, self.progress.best_epoch, exit_code,
                           partial=self.partial)

    def train_epoch(self, epoch: int, deadline: float, signals: StopFlag
                    ) -> tuple[bool, str | None]:
        """Train the batches of `epoch` left to do; whether the epoch is complete, and why
        training must stop (time limit, a signal) if it must."""
        s, p, world = self.setup, self.progress, self.world
        batches = s.batches(epoch)  # this process's rows of them
        self.epoch_batches = len(batches)
        losses = torch.zeros(len(batches), dtype=torch.float64, device=s.device)
        losses[: p.batch] = torch.tensor(p.batch_losses, dtype=torch.float64)
        rows = world.rows(self.cfg.train.batch_size)  # of the carried state, (L, B, H) each
        hidden = tuple(h[:, rows].to(s.device) for h in p.hidden) if p.hidden else None
        start, done, stopped = time.perf_counter(), p.batch, None
        s.model.train()
        self.bar_title = f"epoch {epoch}/{self.cfg.train.epochs}"
        self.bar = bar = tqdm(total=len(batches), initial=done, desc=self.bar_title,
                              leave=False, disable=not self.progress_bar, dynamic_ncols=True)
        self.report.epoch_started(done)
        while done < len(batches) and not stopped:
            X, Y = batches.batch(done)  # (B, T) each
            if not batches.carries_state:
                hidden = None
            elif hidden is not None:
                hidden = (hidden[0].detach(), hidden[1].detach())  # truncated BPTT
            with contact(world):  # DDP's backward meets the other processes
                loss, hidden = s.step(X, Y, hidden)  # forward, backward, clip, update
            losses[done] = loss
            done += 1
            bar.update(1)
            # every process stops at the same batch, for the first reason any of them has
            stopped = world.stop(signals.raised or
                                 ("time limit" if time.monotonic() > deadline else None))
            if stopped or done - p.batch >= CHECK_EVERY or done == len(batches):
                world.mean_(losses[p.batch:done])  # the global batches' losses
                self.check_finite(losses, p.batch, done, epoch)
                p.batch = done  # everything up to here is known to be finite
                ppl = perplexity(losses[:done].mean().item())
                bar.set_postfix(ppl=f"{ppl:.2f}")
                self.report.batches(self.bar_title, done, len(batches), ppl)
        p.seconds += time.perf_counter() - start
        p.batch_losses = losses[:done].tolist()
        complete = done == len(batches)
        p.hidden = None
        if not complete and batches.carries_state:  # the global batch's rows, all processes'
            p.hidden = [torch.cat(world.gather(h.detach().cpu()), dim=1) for h in hidden]
        return complete, stopped

    def check_finite(self, losses: torch.Tensor, lo: int, hi: int, epoch: int) -> None:
        """Stop if a loss of batches lo..hi is not finite (the weights that made it are not
        either, or soon will not be); the weights themselves are checked before each save."""
        bad = (~torch.isfinite(losses[lo:hi])).nonzero()
        if len(bad):
            b = lo + int(bad[0])
            self.diverged(f"the loss became {losses[b].item()} at epoch {epoch}, batch {b + 1}")

    def end_epoch(self, epoch: int) -> bool:
        """Validation, the schedule, checkpoints and the report; True to stop early."""
        s, p, t = self.setup, self.progress, self.cfg.train
        train_loss = sum(p.batch_losses) / len(p.batch_losses)
        if not self.setup.finite():  # before validation, whose nan would say less
            self.diverged(f"the weights became non-finite (inf or nan) in epoch {epoch}")
        self.status("validating")
        row = self.world.from_main(lambda: epoch_row(s, p, epoch, train_loss, self.diverged))
        self.history.append(row)
        monitored = sampled_figure(row)
        lr = s.optimizer.param_groups[0]["lr"]
        decision = self.schedule.end_of_epoch(p, epoch, monitored, train_loss, lr,
                                              learning_figure(row))
        if decision.halve_lr:
            for group in s.optimizer.param_groups:
                group["lr"] /= 2
        raised = regularising.strengthen(s, p, epoch) if decision.strengthen else None
        p.start_next_epoch(epoch, train_loss)
        self.save(best=decision.improved)
        self.close_bar()  # before any line is written, which would land in the bar's line
        self.report.epoch(row, decision.improved)  # with the lr it trained at; the halving after
        if decision.halve_lr:
            self.report.lr_halved(lr / 2, floor=not self.schedule.can_halve(lr / 2))
        if raised:
            self.report.strengthened(raised)
        if t.preview_every and epoch % t.preview_every == 0:
            self.report.preview(s.model, s.corpus, t.prefix, s.mixed_counts(self.history))
        if decision.stop:
            self.report.early_stop(p.bad_epochs, p.best, p.best_epoch)
        return decision.stop
