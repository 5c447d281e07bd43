"""The options that `train` and `compare` share, listed once, and the decorator that gives a
command such a list as its options: Typer reads a command's options from `inspect.signature`,
which honours `__signature__`, and calls the command with each option as a keyword argument."""

from __future__ import annotations

import inspect
from typing import Any, Callable, TypeVar, get_args

from lyricgen import cli_options as o

Command = TypeVar("Command", bound=Callable[..., Any])


def _options(**kinds: Any) -> list[inspect.Parameter]:
    """Keyword-only parameters in the order given: plain flags (`Annotated[bool, ...]`) are off
    unless given, the rest None (left to --config, then to the built-in defaults)."""
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind,
                              default=False if get_args(kind)[0] is bool else None)
            for name, kind in kinds.items()]


TRAIN = _options(
    config=o.ConfigFile, data=o.Data, newlines=o.Newlines, max_chars=o.MaxChars,
    val_fraction=o.ValFraction, script=o.Script, tidy_spaces=o.TidySpaces,
    drop_lines=o.DropLines, backend=o.Backend, input=o.Input, embedding_size=o.EmbeddingSize,
    hidden_size=o.HiddenSize, num_layers=o.NumLayers, dropout=o.Dropout,
    embedding_dropout=o.EmbeddingDropout, tie_weights=o.TieWeights, init=o.Init,
    ngram_order=o.NgramOrder, num_steps=o.NumSteps, batch_size=o.BatchSize,
    sampling=o.Sampling, optimizer=o.Optimizer, lr=o.Lr, weight_decay=o.WeightDecay,
    clip=o.Clip, epochs=o.Epochs, time_limit=o.TimeLimit, lr_schedule=o.LrSchedule,
    plateau_patience=o.PlateauPatience, patience=o.Patience, cache_eval=o.CacheEval,
    seed=o.Seed, device=o.Device, cuda_graphs=o.CudaGraphs, matmul=o.Matmul, out=o.Out,
    preview_every=o.PreviewEvery, prefix=o.TrainPrefixes, init_from=o.InitFrom,
    resume=o.Resume, overwrite=o.Overwrite)

# compare trains both backends from scratch (no --backend, --init-from or --resume), each into
# a subfolder of its own --out
COMPARE = [p.replace(annotation=o.CompareOut) if p.name == "out" else p
           for p in TRAIN if p.name not in ("backend", "init_from", "resume")]


def options(parameters: list[inspect.Parameter]) -> Callable[[Command], Command]:
    """Give the decorated command these options (it takes them as keyword arguments)."""
    def decorate(command: Command) -> Command:
        command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        return command
    return decorate
