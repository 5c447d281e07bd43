"""The training loop: batches, clipping, optimizer and schedule, train / val perplexity,
previews, early stopping and checkpoints. No command-line code here.

Every checkpoint records where training stands (epochs done, batches done in the epoch under
way, the carried LSTM state, the per-batch losses so far, RNG states), so a run stopped at any
batch boundary (time limit, SIGINT, SIGTERM) resumes to exactly what an unbroken run gives.
"""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from lyricgen.batching import Batches, make_batches
from lyricgen.checkpoint import copy_checkpoint, save_checkpoint
from lyricgen.config import Config, SampleConfig
from lyricgen.corpus import Corpus
from lyricgen.device import resolve_device
from lyricgen.errors import Interrupted, LyricgenError
from lyricgen.evaluate import Evaluation, evaluate
from lyricgen.generate import generate
from lyricgen.models import native, triton_step
from lyricgen.models.lm import CharLM
from lyricgen.train_step import CudaGraphs, GraphedStep, Log, TrainStep

CHECK_EVERY = 16  # batches between syncs that read the loss (finite check, progress bar)
PREVIEW = SampleConfig(length=50, greedy=True)  # the book previews 50 greedy characters


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint."""

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


@dataclass
class TrainResult:
    history: list[dict[str, Any]]
    stop: str  # finished | early stop | time limit
    out: Path
    best_epoch: int


class Trainer:
    def __init__(self, cfg: Config, corpus: Corpus, out: Path, log: Log = print,
                 progress_bar: bool = True):
        self.cfg, self.corpus, self.out, self.log = cfg, corpus, out, log
        self.progress_bar = progress_bar
        self.device = resolve_device(cfg.train.device)
        torch.manual_seed(cfg.train.seed)  # the initial weights
        self.model = CharLM(len(corpus.vocab), cfg.model).to(self.device)
        for source in (native, triton_step):  # the step kernels: C on the CPU, Triton on CUDA
            if cfg.model.backend == "scratch" and source.usable(self.model.head.weight) \
                    and source.step_kernels() is None:  # built here, before any timing
                log(f"note: {source.unavailable_reason()}; the scratch LSTM runs its steps "
                    "as PyTorch ops, which is slower")
        graphs = cfg.train.cuda_graphs and self.device.type == "cuda"
        self.optimizer = make_optimizer(self.model, cfg, capturable=graphs)
        step = TrainStep(self.model, self.optimizer, cfg.train.clip)
        self.step = GraphedStep(step, CudaGraphs(self.device), log) if graphs else step
        self.progress = Progress()
        self.history: list[dict[str, Any]] = []
        self._batches(1)  # fails now, not after set-up, if the text is too short for a batch
        if len(corpus.val_ids) == 1:
            raise LyricgenError("the validation part is a single character; raise "
                                "--val-fraction or set it to 0")

    # --- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "config": self.cfg.to_dict(),
            "vocab": self.corpus.vocab.to_dict(),
            "corpus_sha256": self.corpus.sha256,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "progress": asdict(self.progress),
            "rng": rng,
            "history": self.history,
        }

    def load_state_dict(self, payload: dict[str, Any]) -> None:
        """Continue from a checkpoint written by `state_dict` (the caller checked its corpus)."""
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.progress = Progress(**payload["progress"])
        self.history = list(payload["history"])
        torch.set_rng_state(payload["rng"]["torch"])
        if "cuda" in payload["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(payload["rng"]["cuda"], self.device)

    def save(self, best: bool = False) -> None:
        # best.pt first: a crash between the two writes leaves last.pt one epoch behind (that
        # epoch is redone on resume) rather than a best.pt older than the best epoch.
        if best:
            save_checkpoint(self.state_dict(), self.out / "best.pt")
            copy_checkpoint(self.out / "best.pt", self.out / "last.pt")
        else:
            save_checkpoint(self.state_dict(), self.out / "last.pt")

    # --- the loop ------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        cfg = self.cfg.train
        self._rewrite_metrics()
        deadline = time.monotonic() + cfg.time_limit * 60 if cfg.time_limit else math.inf
        stop = "finished"
        with stop_signals() as signals:
            while self.progress.epoch < cfg.epochs:
                epoch = self.progress.epoch + 1
                complete, stopped = self._train_epoch(epoch, deadline, signals)
                if complete and self._end_epoch(epoch):
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

    def _train_epoch(self, epoch: int, deadline: float, signals: StopFlag
                     ) -> tuple[bool, str | None]:
        """Train the batches of `epoch` left to do; whether the epoch is complete, and why
        training must stop (time limit, a signal) if it must."""
        cfg, p = self.cfg.train, self.progress
        batches = self._batches(epoch)
        losses = torch.zeros(len(batches), dtype=torch.float64, device=self.device)
        losses[: p.batch] = torch.tensor(p.batch_losses, dtype=torch.float64)
        hidden = tuple(h.to(self.device) for h in p.hidden) if p.hidden else None
        start, done, stopped = time.perf_counter(), p.batch, None
        self.model.train()
        bar = tqdm(total=len(batches), initial=done, desc=f"epoch {epoch}/{cfg.epochs}",
                   leave=False, disable=not self.progress_bar, dynamic_ncols=True)
        while done < len(batches) and not stopped:
            X, Y = batches.batch(done)  # (B, T) each
            if not batches.carries_state:
                hidden = None
            elif hidden is not None:
                hidden = (hidden[0].detach(), hidden[1].detach())  # truncated BPTT
            loss, hidden = self.step(X, Y, hidden)  # forward, backward, clip, update
            losses[done] = loss
            done += 1
            bar.update(1)
            if signals.raised or time.monotonic() > deadline:
                stopped = signals.raised or "time limit"
            if stopped or done - p.batch >= CHECK_EVERY or done == len(batches):
                self._check_finite(losses, p.batch, done, epoch)
                p.batch = done  # everything up to here is known to be finite
                bar.set_postfix(ppl=f"{perplexity(losses[:done].mean().item()):.2f}")
        bar.close()
        p.seconds += time.perf_counter() - start
        p.batch_losses = losses[:done].tolist()
        complete = done == len(batches)
        p.hidden = [h.detach().cpu() for h in hidden] \
            if not complete and batches.carries_state else None
        return complete, stopped

    def _batches(self, epoch: int) -> Batches:
        return training_batches(self.cfg, self.corpus, self.device, epoch)

    def _check_finite(self, losses: torch.Tensor, lo: int, hi: int, epoch: int) -> None:
        bad = (~torch.isfinite(losses[lo:hi])).nonzero()
        if len(bad):
            b = lo + int(bad[0])
            raise LyricgenError(
                f"the loss became {losses[b].item()} at epoch {epoch}, batch {b + 1}; training "
                f"stopped and the last good checkpoint in {self.out} is kept (epoch "
                f"{self.progress.epoch}); try a lower --lr or a smaller --clip")

    def _end_epoch(self, epoch: int) -> bool:
        """Validation, metrics, schedule, checkpoints, preview; True to stop early."""
        cfg, p = self.cfg.train, self.progress
        train_loss = sum(p.batch_losses) / len(p.batch_losses)
        tokens = len(p.batch_losses) * cfg.batch_size * cfg.num_steps
        row = {
            "epoch": epoch,
            "train_ppl": perplexity(train_loss),
            "val_ppl": None,
            "seconds": p.seconds,
            "tokens_per_s": tokens / p.seconds,
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        val = self._validation()
        if val is not None and val.cache_loss is not None:  # val_ppl is the cache figure
            row["val_ppl"], row["val_ppl_plain"] = perplexity(val.cache_loss), perplexity(val.loss)
        elif val is not None:
            row["val_ppl"] = perplexity(val.loss)
        self.history.append(row)

        monitored = row["val_ppl"] if val is not None else row["train_ppl"]
        improved = monitored < p.best
        if improved:
            p.best, p.best_epoch, p.bad_epochs, p.plateau_epochs = monitored, epoch, 0, 0
        else:
            p.bad_epochs += 1
            p.plateau_epochs += 1
        self._schedule(train_loss)
        p.prev_train_loss = train_loss
        p.epoch, p.batch, p.batch_losses, p.seconds = epoch, 0, [], 0.0
        self.save(best=improved)
        with (self.out / "metrics.jsonl").open("a", encoding="utf-8") as f:  # after the save:
            f.write(json.dumps(row) + "\n")  # never a row for an epoch that was not saved

        self.log(format_row(row, cfg.epochs) + ("  *" if improved else ""))
        if cfg.preview_every and epoch % cfg.preview_every == 0:
            for line in self.preview():
                self.log(f"  {line}")
        if cfg.patience and p.bad_epochs >= cfg.patience:
            self.log(f"early stop: no improvement for {p.bad_epochs} epochs "
                     f"(best {p.best:.2f} at epoch {p.best_epoch})")
            return True
        return False

    def _validation(self) -> Evaluation | None:
        if not len(self.corpus.val_ids):
            return None
        cfg = self.cfg.train
        return evaluate(self.model, self.corpus.val_ids, cfg.num_steps, cache=cfg.cache_eval)

    def _schedule(self, train_loss: float) -> None:
        cfg, p = self.cfg.train, self.progress
        halve = (cfg.lr_schedule == "halve" and p.prev_train_loss is not None
                 and train_loss > p.prev_train_loss) or \
                (cfg.lr_schedule == "plateau" and p.plateau_epochs >= cfg.plateau_patience)
        if halve:
            p.plateau_epochs = 0
            for group in self.optimizer.param_groups:
                group["lr"] /= 2
            self.log(f"lr halved to {self.optimizer.param_groups[0]['lr']:.3g}")

    def preview(self) -> list[str]:
        vocab, lines = self.corpus.vocab, []
        for prefix in self.cfg.train.prefix:
            ids = vocab.encode(prefix, unknown="skip")
            if ids:
                text = vocab.decode(generate(self.model, ids, PREVIEW)[0])
                lines.append((vocab.decode(ids) + text).replace("\n", " / "))
        return lines

    def _rewrite_metrics(self) -> None:
        """metrics.jsonl as the history says (a resumed run drops rows of lost epochs)."""
        with (self.out / "metrics.jsonl").open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(row) + "\n" for row in self.history)


def perplexity(loss: float) -> float:
    """exp(mean cross-entropy); inf rather than an overflow for a loss beyond float range."""
    return math.exp(loss) if loss < 709 else math.inf


def make_optimizer(model: torch.nn.Module, cfg: Config, capturable: bool = False
                   ) -> torch.optim.Optimizer:
    """Adam(W): the fused implementation (one kernel for all parameters) where this torch has
    it, else the multi-tensor (foreach) one; SGD: foreach (on CPU, fused SGD measured 8x
    slower than foreach, fused Adam 1.2x faster). `capturable`: Adam(W) keeps its step count
    on the device, so that a CUDA graph can record its update."""
    t = cfg.train
    kind = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    settings = dict(lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer != "sgd":
        settings["capturable"] = capturable
        try:
            return kind[t.optimizer](model.parameters(), fused=True, **settings)
        except (RuntimeError, TypeError, ValueError):
            pass
    return kind[t.optimizer](model.parameters(), foreach=True, **settings)


def training_batches(cfg: Config, corpus: Corpus, device: torch.device, epoch: int) -> Batches:
    """The batches of `epoch`: their order depends on (seed, epoch) alone, so resuming needs
    no data-order state."""
    t = cfg.train
    generator = torch.Generator().manual_seed((t.seed * 1_000_003 + epoch) % 2**63)
    return make_batches(corpus.train_ids, t.batch_size, t.num_steps, t.sampling, device,
                        generator)


def format_row(row: dict[str, Any], epochs: int) -> str:
    val = f"{row['val_ppl']:9.2f}" if row["val_ppl"] is not None else "        -"
    if "val_ppl_plain" in row:
        val += f" (cache; plain {row['val_ppl_plain']:.2f})"
    return (f"epoch {row['epoch']:>4}/{epochs}  train ppl {row['train_ppl']:9.2f}  val ppl {val}"
            f"  {row['seconds']:6.1f}s  {row['tokens_per_s']:8,.0f} tok/s  lr {row['lr']:.3g}")


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
