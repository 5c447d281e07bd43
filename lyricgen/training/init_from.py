"""`train --init-from RUN/best.pt`: a new run that starts from another run's weights, on its own
corpus. The weights carry over by name (both backends use nn.LSTM's names, so any backend to
any backend), on whatever device; the rows of a character both vocabularies have are copied,
those of characters new to this corpus keep their fresh initial values, and the optimizer
starts afresh."""

from __future__ import annotations

import torch

from lyricgen.checkpoint import Checkpoint
from lyricgen.errors import UsageError
from lyricgen.models.charlm import CharLM
from lyricgen.data.vocab import Vocab


def transplant(model: CharLM, source: Checkpoint, vocab: Vocab) -> tuple[int, int]:
    """Copy `source`'s weights into `model` (made for `vocab`): (characters carried over,
    characters new). A weight whose shape cannot carry over is a usage error naming it."""
    shared = [c for c in vocab.chars if c in source.vocab.index]
    new_rows = torch.tensor([vocab.index[c] for c in shared], dtype=torch.long)
    old_rows = torch.tensor([source.vocab.index[c] for c in shared], dtype=torch.long)
    vocab_dims = model.vocab_dims()
    state = model.state_dict()
    missing = [name for name in state if name not in source.model]
    if missing:
        raise UsageError(f"--init-from {source.source}: its model has no {missing[0]}; "
                         + differing(model, source))
    with torch.no_grad():
        for name, target in state.items():
            weight = source.model[name].to(target.device, target.dtype)
            dim = vocab_dims.get(name)
            if dim is None:
                check_shape(name, weight, target, source, model)
                target.copy_(weight)
                continue
            other = [s for d, s in enumerate(weight.shape) if d != dim]
            if other != [s for d, s in enumerate(target.shape) if d != dim]:
                check_shape(name, weight, target, source, model)
            target.index_copy_(dim, new_rows.to(target.device),
                               weight.index_select(dim, old_rows.to(target.device)))
    return len(shared), len(vocab) - len(shared)


def check_shape(name: str, weight: torch.Tensor, target: torch.Tensor, source: Checkpoint,
                model: CharLM) -> None:
    if weight.shape != target.shape:
        shape = lambda t: "x".join(map(str, t.shape))  # noqa: E731
        raise UsageError(f"--init-from {source.source}: its {name} is {shape(weight)}, this "
                         f"run's is {shape(target)}; " + differing(model, source))


SHAPING = ("input", "embedding_size", "hidden_size", "num_layers", "tie_weights")


def differing(model: CharLM, source: Checkpoint) -> str:
    """The model settings this run gives otherwise than `source` was made with, named."""
    ours, theirs = model.cfg, source.config.model
    given = [f"{option(k, getattr(ours, k))} (it was made with {option(k, getattr(theirs, k))})"
             for k in SHAPING if getattr(ours, k) != getattr(theirs, k)]
    return (f"this run gives {', '.join(given)}; " if given else "") + \
        "give the settings it was made with, or leave them out"


def option(key: str, value) -> str:
    name = key.replace("_", "-")
    return (f"--{name}" if value else f"--no-{name}") if isinstance(value, bool) else \
        f"--{name} {value}"
