"""One training step (forward, loss, backward, clipping, update), run eagerly or replayed from
a CUDA graph.

On CUDA a step at the book's size is hundreds of small kernels, and launching them costs far
more than running them (the scratch LSTM's per-step ops most of all). `GraphedStep` records the
whole step once as a CUDA graph and replays it for every batch, one launch per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Protocol

import torch
from torch.autograd.function import once_differentiable

from lyricgen.models.base import State
from lyricgen.training.precision import bfloat16_matmuls
from lyricgen.training.reporting import Log


class TrainStep:
    """The step as plain PyTorch: `step(X, Y, hidden) -> (loss, hidden)`.

    `onednn=False` runs the forward pass with oneDNN off; `bfloat16` runs forward and backward
    with the CPU's matmuls on bfloat16 inputs (precision.py). Both settings are process-wide:
    so they are switched only around the step, by the one that owns the run.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, clip: float,
                 onednn: bool = True, bfloat16: bool = False):
        self.model, self.optimizer, self.clip, self.onednn = model, optimizer, clip, onednn
        self.bfloat16 = bfloat16
        self.params = [q for q in model.parameters() if q.requires_grad]

    def settings(self) -> tuple[float, ...]:
        """The numbers a CUDA graph of the step bakes in: each group's lr and weight decay,
        the model's dropout."""
        model = getattr(self.model, "module", self.model)  # (under DistributedDataParallel)
        groups = [(g["lr"], g["weight_decay"]) for g in self.optimizer.param_groups]
        return (*(x for pair in groups for x in pair), model.cfg.dropout,
                model.cfg.embedding_dropout)

    def __call__(self, X: torch.Tensor, Y: torch.Tensor, hidden: State | None
                 ) -> tuple[torch.Tensor, State]:
        with bfloat16_matmuls() if self.bfloat16 else nullcontext():
            with nullcontext() if self.onednn else onednn_off():
                logits, hidden = self.model(X, hidden)  # (B, T, V)
            loss = CrossEntropy.apply(logits.flatten(0, 1), Y.flatten())
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip, foreach=True)
        self.optimizer.step()
        return loss.detach(), hidden


class CrossEntropy(torch.autograd.Function):
    """F.cross_entropy(logits (N, V), targets (N,)), the mean over rows, with its backward
    written as softmax - one-hot in the buffer of the saved log-probabilities: one pass over
    the (N, V) values each way, where F.cross_entropy's backward takes three (measured: 3-6%
    of a CPU training step of the default model)."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p = torch.log_softmax(logits, dim=1)
        ctx.save_for_backward(log_p, targets)
        return -log_p.gather(1, targets[:, None]).mean()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        log_p, targets = ctx.saved_tensors
        d = log_p.exp_()  # the softmax, in place: the saved values are not needed again
        d[torch.arange(len(targets), device=d.device), targets] -= 1
        return d.mul_(grad / len(targets)), None


@contextmanager
def onednn_off() -> Iterator[None]:
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


class Recorder(Protocol):
    """Where eager warm-up steps run, and how a function is recorded for replay."""

    def warmup(self) -> AbstractContextManager[None]: ...

    def record(self, fn: Callable[[], None]) -> Callable[[], None]: ...


class CudaGraphs:
    """The `Recorder` for CUDA (on `device`, also when it is not the current one)."""

    def __init__(self, device: torch.device):
        self.device, self.stream = device, torch.cuda.Stream(device)

    @contextmanager
    def warmup(self) -> Iterator[None]:
        # Capture wants the steps before it on a side stream (lazy cuBLAS / autograd set-up).
        main = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(main)
        with torch.cuda.device(self.device), torch.cuda.stream(self.stream):
            yield
        main.wait_stream(self.stream)

    def record(self, fn: Callable[[], None]) -> Callable[[], None]:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.device(self.device), torch.cuda.graph(graph):  # records; runs nothing
            fn()
        return graph.replay


class GraphedStep:
    """`TrainStep` recorded once and replayed: the batch and the carried state are copied into
    the recorded input tensors, and the loss and final state are read from its outputs.

    The first `warmup` steps of a recording run eagerly (capture needs them). The lr, the weight
    decay and the dropout are baked into the recording, so a change of any (the schedule,
    regularising.py) records anew. A batch of another shape than the recorded one runs
    eagerly. If recording fails, every step runs eagerly from then on, after one note. Adam(W)
    must be `capturable` to be recorded; eager steps run with that flag off where it changes
    nothing but torch's warning (its fused kernels ignore it).
    """

    def __init__(self, step: TrainStep, recorder: Recorder, log: Log, warmup: int = 3):
        self.step, self.recorder, self.log, self.warmup = step, recorder, log, warmup
        self.replay: Callable[[], None] | None = None
        self.baked: tuple[float, ...] | None = None  # settings of the recording (or warm-up)
        self.warm = 0  # eager warm-up steps done for the next recording
        self.failed = False

    def __call__(self, X: torch.Tensor, Y: torch.Tensor, hidden: State | None
                 ) -> tuple[torch.Tensor, State]:
        baked = self.step.settings()
        if baked != self.baked:
            self.replay, self.baked, self.warm = None, baked, 0
        if self.failed or (self.replay is not None and X.shape != self.X.shape):
            return self.eager(X, Y, hidden)
        if self.replay is None and self.warm < self.warmup:
            self.warm += 1
            with self.recorder.warmup():
                loss, hidden = self.eager(X, Y, hidden)
            self.state_like = tuple(h.detach() for h in hidden)
            return loss, hidden
        if self.replay is None:
            try:
                self._record(X, Y)
            except RuntimeError as e:
                self.failed = True
                self.log(f"note: the training step could not be recorded as a CUDA graph "
                         f"({str(e).splitlines()[0]}); it runs eagerly, which is slower")
                return self.eager(X, Y, hidden)
        self.X.copy_(X)
        self.Y.copy_(Y)
        for static, h in zip(self.h, hidden or (None, None)):
            if h is None:  # a fresh state, as the model makes for None
                static.zero_()
            else:
                static.copy_(h)
        self.replay()
        return self.loss, self.h_out

    def eager(self, X: torch.Tensor, Y: torch.Tensor, hidden: State | None
              ) -> tuple[torch.Tensor, State]:
        groups = [g for g in self.step.optimizer.param_groups
                  if g.get("capturable") and g.get("fused")]
        for group in groups:
            group["capturable"] = False
        try:
            return self.step(X, Y, hidden)
        finally:
            for group in groups:
                group["capturable"] = True

    def _record(self, X: torch.Tensor, Y: torch.Tensor) -> None:
        self.X, self.Y = X.clone(), Y.clone()
        self.h = tuple(torch.zeros_like(s) for s in self.state_like)

        def run() -> None:
            # Detached: a kept autograd graph would tie later eager steps to the capture stream.
            self.loss, h_out = self.step(self.X, self.Y, self.h)
            self.h_out = tuple(h.detach() for h in h_out)

        self.replay = self.recorder.record(run)

