"""Training on several processes (torchrun): which process this is, and the few things the
processes must agree on, through torch.distributed (gloo on the CPU, NCCL on CUDA).

`torchrun --nproc-per-node N -m lyricgen train ...` starts N processes with RANK, WORLD_SIZE
and LOCAL_RANK set; without them a run is one process and nothing here talks to anyone. The
model is wrapped in DistributedDataParallel, which averages the gradients; the rest is here:
each process's rows of the global batch, the loss averaged over processes, the stop (a signal
or the time limit) decided together, validation done by rank 0 and shared, the carried state
and RNG states gathered for rank 0's checkpoint.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from lyricgen.errors import LyricgenError, UsageError

T = TypeVar("T")
TIMEOUT_S = 600  # how long a process waits for the others (LYRICGEN_DIST_TIMEOUT overrides)


def timeout() -> timedelta:
    """LYRICGEN_DIST_TIMEOUT (seconds; default TIMEOUT_S), checked to be a positive finite
    number: a bad one is refused before any process starts waiting."""
    raw = os.environ.get("LYRICGEN_DIST_TIMEOUT", str(TIMEOUT_S))
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < 10**9:  # timedelta's own limit is near 10**14 s; nan fails too
        raise UsageError(f"LYRICGEN_DIST_TIMEOUT must be a positive number of seconds (at most "
                         f"10**9), not {raw!r}")
    return timedelta(seconds=seconds)


class LostContact(LyricgenError):
    """Another process of the run died or stopped answering."""


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def rows(self, batch_size: int) -> slice:
        """This process's rows of a global batch."""
        share = batch_size // self.size
        return slice(self.rank * share, (self.rank + 1) * share)

    def mean_(self, x: torch.Tensor) -> torch.Tensor:
        """Average `x` over the processes, in place (each holds the mean of equal shares)."""
        if self.distributed:
            with contact(self):
                dist.all_reduce(x, op=dist.ReduceOp.SUM)
            x /= self.size
        return x

    def stop(self, reason: str | None) -> str | None:
        """The reason to stop at this batch boundary, the same in every process: the first
        of SIGINT, SIGTERM and the time limit that any process has."""
        if not self.distributed:
            return reason
        reasons = ("SIGINT", "SIGTERM", "time limit")
        flags = torch.tensor([reason == r for r in reasons], dtype=torch.int32,
                             device=self.device())
        with contact(self):
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        return next((r for r, f in zip(reasons, flags.tolist()) if f), None)

    def from_main(self, make: Callable[[], T]) -> T:
        """`make()` run by rank 0 alone, its result (or its error) given to every process."""
        if not self.distributed:
            return make()
        box: list[Any] = [None]
        if self.main:
            try:
                box[0] = ("ok", make())
            except LyricgenError as e:
                box[0] = ("error", str(e))
                self.broadcast(box)
                raise
        self.broadcast(box)
        kind, value = box[0]
        if kind == "error":
            raise LyricgenError(value)
        return value

    def broadcast(self, box: list[Any]) -> None:
        with contact(self):
            dist.broadcast_object_list(box, src=0)

    def gather(self, value: T) -> list[T]:
        """Every process's `value`, in rank order."""
        if not self.distributed:
            return [value]
        out: list[Any] = [None] * self.size
        with contact(self):
            dist.all_gather_object(out, value)
        return out

    def rng_state(self, device: torch.device) -> dict[str, Any]:
        """The RNG states a checkpoint keeps: this process's, and with several every
        process's (gathered), so that --resume on as many processes is exact."""
        rng: dict[str, Any] = {"torch": torch.get_rng_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(device)
        if self.distributed:
            rng["ranks"] = self.gather(dict(rng))
        return rng

    def set_rng_state(self, rng: dict[str, Any], device: torch.device) -> None:
        """This process's state from `rng_state`'s (a run on as many processes), else the
        state saved by rank 0 or by one process."""
        ranks = rng.get("ranks", [])
        mine = ranks[self.rank] if len(ranks) == self.size else rng
        torch.set_rng_state(mine["torch"])
        if "cuda" in mine and device.type == "cuda":
            torch.cuda.set_rng_state(mine["cuda"], device)

    def wait_for_all(self) -> None:
        """Until every process is here (rank 0 may still be writing when the others end)."""
        if self.distributed:
            with contact(self):
                dist.barrier()

    def device(self) -> torch.device:
        backend = dist.get_backend() if dist.is_initialized() else "gloo"
        return torch.device("cuda", self.local_rank) if backend == "nccl" else torch.device("cpu")


def world_from_env() -> World:
    """This process's place, as torchrun sets it; one process without torchrun."""
    timeout()  # refused at once, in one process too
    size = int(os.environ.get("WORLD_SIZE", 1))
    if size <= 1:
        return World()
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", 0)))


def join(world: World, cuda: bool) -> None:
    """Meet the other processes (gloo on the CPU, NCCL with one GPU per local rank)."""
    if world.distributed and not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(world.local_rank)
        with contact(world):
            dist.init_process_group("nccl" if cuda else "gloo", timeout=timeout())


def leave(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


class contact:
    """Turns a failed collective (a process died, or did not answer within timeout()) into
    one clear error."""

    def __init__(self, world: World):
        self.world = world

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, trace) -> bool:
        if error is not None and isinstance(error, (dist.DistError, RuntimeError)) \
                and not isinstance(error, LyricgenError):
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            first = re.sub(r"^\[[^\]]*\]\s*", "", first).split(". ")[0][:160]  # gloo's
            raise LostContact(f"process {self.world.rank} of {self.world.size} lost the other "
                              f"processes of the run ({first}); it stops, and the last "
                              "checkpoint written is kept") from None
        return False
