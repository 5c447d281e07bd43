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
from lyricgen.vocab import Vocab


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
        raise UsageError(f"--init-from {source.source}: its model has no {missing[0]} (it was "
                         f"made with other model settings: {settings(source)})")
    with torch.no_grad():
        for name, target in state.items():
            weight = source.model[name].to(target.device, target.dtype)
            dim = vocab_dims.get(name)
            if dim is None:
                check_shape(name, weight, target, source)
                target.copy_(weight)
                continue
            other = [s for d, s in enumerate(weight.shape) if d != dim]
            if other != [s for d, s in enumerate(target.shape) if d != dim]:
                check_shape(name, weight, target, source)
            target.index_copy_(dim, new_rows.to(target.device),
                               weight.index_select(dim, old_rows.to(target.device)))
    return len(shared), len(vocab) - len(shared)


def check_shape(name: str, weight: torch.Tensor, target: torch.Tensor, source: Checkpoint) -> None:
    if weight.shape != target.shape:
        shape = lambda t: "x".join(map(str, t.shape))  # noqa: E731
        raise UsageError(f"--init-from {source.source}: its {name} is {shape(weight)}, this "
                         f"run's is {shape(target)}; give the model settings it was made "
                         f"with ({settings(source)}) or leave them out")


def settings(source: Checkpoint) -> str:
    m = source.config.model
    return (f"--input {m.input} --embedding-size {m.embedding_size} "
            f"--hidden-size {m.hidden_size} --num-layers {m.num_layers}"
            + ("" if m.tie_weights else " --no-tie-weights"))
