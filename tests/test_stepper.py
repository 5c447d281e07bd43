"""The sampling stepper: one character per step, with the weights rearranged, must give the
logits of the model's own forward pass over the whole sequence, on every model shape."""

from __future__ import annotations

import pytest
import torch

from lyricgen.models.charlm import CharLM, ModelConfig
from lyricgen.models.stepper import Stepper

SHAPES = {  # name: model settings (vocab 23, hidden 8)
    "onehot": dict(input="onehot"),
    "embedding, tied, E = H": dict(input="embedding", embedding_size=8, tie_weights=True),
    "embedding, tied, E != H (projection)": dict(input="embedding", embedding_size=5,
                                                 tie_weights=True),
    "embedding, untied": dict(input="embedding", embedding_size=6, tie_weights=False),
}


def model_of(shape: str, backend: str, layers: int, dtype: torch.dtype) -> CharLM:
    torch.manual_seed(0)
    cfg = ModelConfig(backend=backend, hidden_size=8, num_layers=layers, dropout=0.0,
                      embedding_dropout=0.0, **SHAPES[shape])
    model = CharLM(23, cfg).to(dtype).eval()
    with torch.no_grad():  # biases away from their init, so a dropped bias would show
        for name, p in model.named_parameters():
            if "bias" in name:
                p.uniform_(-1, 1)
    return model


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("streams", [1, 3])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("backend", ["scratch", "builtin"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_steps_equal_the_forward_pass_over_the_whole_sequence(shape, backend, layers, streams,
                                                              dtype, tol):
    model = model_of(shape, backend, layers, dtype)
    g = torch.Generator().manual_seed(1)
    prefix = torch.randint(0, 23, (streams, 4), generator=g)
    rest = torch.randint(0, 23, (streams, 9), generator=g)
    with torch.no_grad():
        expected, _ = model(torch.cat([prefix, rest], 1))  # (N, 13, V)
        _, state = model(prefix)
        stepper = Stepper(model, state)
        got = [stepper.logits.clone()]
        for t in range(rest.shape[1]):
            got.append(stepper.step(rest[:, t]).clone())
    got = torch.stack(got, 1)  # (N, 10, V): the logits after the prefix and after each step
    assert got.dtype == dtype
    assert (got - expected[:, 3:]).abs().max().item() <= tol


def test_the_stepper_leaves_the_model_and_the_state_unchanged():
    model = model_of("embedding, tied, E != H (projection)", "scratch", 2, torch.float64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        _, state = model(torch.tensor([[1, 2, 3]]))
        kept = tuple(s.clone() for s in state)
        stepper = Stepper(model, state)
        for i in (4, 5, 6):
            stepper.step(torch.tensor([i]))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(a, b) for a, b in zip(state, kept))
