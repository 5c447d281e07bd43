"""The scratch backend is the same function as torch.nn.LSTM: layout, weights, outputs,
states and gradients agree; a state_dict moves between them unchanged. (Its fast paths are held
to its readable one in test_fast.py.)"""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.utils._python_dispatch import TorchDispatchMode

from lyricgen.models import BACKENDS, BuiltinLSTM, ScratchLSTM
from lyricgen.models.charlm import CharLM, ModelConfig
from lyricgen.models.lookup import RowLookup, column_lookup
from lyricgen.training.step import TrainStep

V, E, H, B, T = 23, 8, 12, 3, 7
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5}
PLAIN = dict(dropout=0.0, embedding_dropout=0.0, tie_weights=False)  # no randomness, no tying


def pair(num_layers: int, input: str, dtype: torch.dtype, seed: int = 0):
    """A scratch and a builtin CharLM with identical weights (the builtin one loaded from the
    scratch one's state_dict)."""
    cfg = ModelConfig(input=input, embedding_size=E, hidden_size=H, num_layers=num_layers,
                      **PLAIN)
    torch.manual_seed(seed)
    scratch = CharLM(V, ModelConfig(**{**vars(cfg), "backend": "scratch"})).to(dtype)
    builtin = CharLM(V, ModelConfig(**{**vars(cfg), "backend": "builtin"})).to(dtype)
    builtin.load_state_dict(scratch.state_dict())
    return scratch, builtin


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def test_parameter_layout_is_nn_lstm_layout():
    for layers in (1, 2, 3):
        ours = [(n, p.shape) for n, p in ScratchLSTM(5, 4, layers).named_parameters()]
        theirs = [(n, p.shape) for n, p in nn.LSTM(5, 4, layers).named_parameters()]
        assert ours == theirs


@pytest.mark.parametrize("layers", [1, 2])
def test_same_seed_gives_nn_lstm_initial_weights(layers):
    torch.manual_seed(7)
    ours = ScratchLSTM(5, 4, layers)
    torch.manual_seed(7)
    theirs = nn.LSTM(5, 4, layers)
    for (name, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert torch.equal(a, b), name
    bound = 1 / 4 ** 0.5
    assert all(p.abs().max() <= bound for p in ours.parameters())


@pytest.mark.parametrize("init", ["uniform", "normal"])
@pytest.mark.parametrize("input", ["onehot", "embedding"])
def test_same_seed_same_charlm_weights_in_both_backends(input, init):
    # The book's normal init too: its draws must not depend on the scratch one-hot input
    # matrix being stored column-major.
    cfg = dict(input=input, init=init, embedding_size=E, hidden_size=H, num_layers=2, **PLAIN)
    torch.manual_seed(3)
    a = CharLM(V, ModelConfig(backend="scratch", **cfg)).state_dict()
    torch.manual_seed(3)
    b = CharLM(V, ModelConfig(backend="builtin", **cfg)).state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("input", ["onehot", "embedding"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("with_state", [False, True])
def test_outputs_states_and_gradients_agree(dtype, input, layers, with_state):
    scratch, builtin = pair(layers, input, dtype)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, V, (B, T), generator=gen)
    targets = torch.randint(0, V, (B, T), generator=gen)
    state = None
    if with_state:
        state = tuple(torch.randn(layers, B, H, generator=gen, dtype=dtype) for _ in range(2))
    results = []
    for model in (scratch, builtin):
        logits, (h, c) = model(ids, state)
        # A loss that reaches every output: the logits and both final states.
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten()) \
            + (h * torch.linspace(-1, 1, H, dtype=dtype)).sum() + (c ** 2).sum()
        grads = torch.autograd.grad(loss, list(model.parameters()))
        results.append((logits, h, c, grads))
    tol = TOLERANCE[dtype]
    (l1, h1, c1, g1), (l2, h2, c2, g2) = results
    assert max_diff(l1, l2) <= tol
    assert max_diff(h1, h2) <= tol and max_diff(c1, c2) <= tol
    names = [n for n, _ in scratch.named_parameters()]
    for name, a, b in zip(names, g1, g2):
        assert max_diff(a, b) <= tol * max(1.0, b.abs().max().item()), name


@pytest.mark.parametrize("direction", [("scratch", "builtin"), ("builtin", "scratch")])
def test_state_dict_moves_between_backends_through_a_file(direction):
    cfg = dict(input="onehot", hidden_size=H, num_layers=2, **PLAIN)
    torch.manual_seed(5)
    source = CharLM(V, ModelConfig(backend=direction[0], **cfg)).double()
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(6)  # different initial weights: the load must replace all of them
    target = CharLM(V, ModelConfig(backend=direction[1], **cfg)).double()
    target.load_state_dict(torch.load(buffer, weights_only=True))
    ids = torch.randint(0, V, (B, T))
    assert max_diff(source(ids)[0], target(ids)[0]) <= 1e-12


def test_scratch_backend_passes_gradcheck():
    torch.manual_seed(0)
    lstm = ScratchLSTM(3, 4, num_layers=2).double()
    names = [n for n, _ in lstm.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in lstm.parameters())
    x = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 2, 4, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 2, 4, dtype=torch.float64, requires_grad=True)

    def f(x, h0, c0, *weights):
        out, (h, c) = functional_call(lstm, dict(zip(names, weights)), (x, (h0, c0)))
        return out, h, c

    assert torch.autograd.gradcheck(f, (x, h0, c0, *params))


def test_scratch_onehot_path_passes_gradcheck():
    torch.manual_seed(0)
    lstm = ScratchLSTM(6, 3).double()
    names = [n for n, _ in lstm.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in lstm.parameters())
    ids = torch.tensor([[0, 5, 2, 2], [4, 1, 0, 3]])

    def f(*weights):
        out, (h, c) = functional_call(lstm, dict(zip(names, weights)), (ids,))
        return out, c

    assert torch.autograd.gradcheck(f, params)


def test_lookup_gradients_match_embedding_and_gradcheck():
    table = torch.randn(9, 4, dtype=torch.float64, requires_grad=True)
    ids = torch.tensor([3, 0, 3, 8, 1, 3])
    assert torch.autograd.gradcheck(lambda t: RowLookup.apply(t, ids), (table,))
    upstream = torch.randn(6, 4, dtype=torch.float64)
    ours = torch.autograd.grad((RowLookup.apply(table, ids) * upstream).sum(), table)[0]
    theirs = torch.autograd.grad((F.embedding(ids, table) * upstream).sum(), table)[0]
    assert torch.allclose(ours, theirs, atol=1e-14)
    weight = torch.randn(4, 9, dtype=torch.float64)
    assert torch.equal(column_lookup(weight, ids), weight[:, ids].t())


class LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an operator produces."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("backend, dense", [("scratch", False), ("builtin", True)])
def test_onehot_input_is_a_column_lookup_not_a_dense_matrix(backend, dense):
    vocab, hidden = 5000, 2  # W_ih (4H, V) = 40,000 elements; a dense one-hot (B, T, V) 105,000
    lstm = BACKENDS[backend](vocab, hidden)
    ids = torch.randint(0, vocab, (B, T))
    with LargestTensor() as probe:
        out, _ = lstm(ids)
        out.sum().backward()
    assert (probe.largest >= B * T * vocab) == dense


class OpNames(TorchDispatchMode):
    """Records the name of every operator run, and the oneDNN flag as each one ran."""

    def __init__(self):
        super().__init__()
        self.names: set[str] = set()
        self.onednn: set[bool] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func.__name__)
        self.onednn.add(torch.backends.mkldnn.enabled)
        return func(*args, **(kwargs or {}))


def test_the_builtin_backend_leaves_torch_s_onednn_flag_alone():
    lstm = BACKENDS["builtin"](30, 4)
    with OpNames() as probe:
        out, _ = lstm(torch.randint(0, 30, (B, T)))
        out.sum().backward()
    assert probe.onednn == {torch.backends.mkldnn.enabled}


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")
@pytest.mark.parametrize("onednn", [True, False])
def test_a_training_step_without_onednn_runs_none_of_its_ops(onednn):
    """oneDNN's LSTM backward computes the dense one-hot input's gradient, which nobody needs;
    set-up turns it off for one-hot builtin training on the CPU, around the step only."""
    model = CharLM(V, ModelConfig(backend="builtin", input="onehot", hidden_size=H, **PLAIN))
    step = TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.1), clip=1.0,
                     onednn=onednn)
    with OpNames() as probe:
        step(torch.randint(0, V, (B, T)), torch.randint(0, V, (B, T)), None)
    assert any("mkldnn" in name for name in probe.names) == onednn
    assert torch.backends.mkldnn.enabled


def test_dropout_acts_between_layers_in_training_only():
    torch.manual_seed(0)
    lstm = ScratchLSTM(4, 6, num_layers=2, dropout=0.5)
    x = torch.randn(2, 5, 4)
    lstm.eval()
    assert torch.equal(lstm(x)[0], lstm(x)[0])
    lstm.train()
    assert not torch.equal(lstm(x)[0], lstm(x)[0])
    single = ScratchLSTM(4, 6, num_layers=1, dropout=0.5).train()
    assert torch.equal(single(x)[0], single(x)[0])  # no layer after the last one: no dropout


def test_backends_are_chosen_by_name():
    assert set(BACKENDS) == {"scratch", "builtin"}
    for name, klass in BACKENDS.items():
        model = CharLM(V, ModelConfig(backend=name, hidden_size=H, embedding_size=E, **PLAIN))
        assert isinstance(model.rnn, klass)
    assert issubclass(BuiltinLSTM, nn.LSTM)


def test_begin_state_shape():
    model = CharLM(V, ModelConfig(hidden_size=H, embedding_size=E, num_layers=2, **PLAIN))
    h, c = model.begin_state(4)
    assert h.shape == c.shape == (2, 4, H) and not h.any() and not c.any()
