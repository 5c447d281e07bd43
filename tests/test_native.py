"""The C step kernels (models/native.py, lstm_step.c): their numbers against PyTorch's own
functions and autograd, their use by the scratch backend, the build cache, and the fallback
to PyTorch ops where they cannot be built."""

from __future__ import annotations

import shutil

import pytest
import torch

from conftest import tiny_options
from lyricgen import runs
from lyricgen.models import native, triton_step
from lyricgen.models.native import NativeUnavailable, StepKernels
from lyricgen.models.scratch import ScratchLSTM, step_kernels

needs_compiler = pytest.mark.skipif(
    not any(shutil.which(c) for c in ("cc", "gcc", "clang")),
    reason="no C compiler on this machine: the kernels cannot exist here, training uses "
           "PyTorch ops (test_no_compiler_means_pytorch_ops_and_a_note covers that)")
B, H = 5, 19  # H not a multiple of the vector width, so the loops' tails run too


@pytest.fixture
def fresh_load():
    native._load.cache_clear()
    yield
    native._load.cache_clear()


@pytest.fixture(scope="module")
def kernels(tmp_path_factory) -> StepKernels:
    return StepKernels.load(native.build(tmp_path_factory.mktemp("cache")))


def cell(pre: torch.Tensor, c_prev: torch.Tensor):
    """The LSTM step from torch's functions, nn.LSTM's gate order."""
    i, f, g, o = pre.chunk(4, dim=1)
    c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
    return c, torch.sigmoid(o) * torch.tanh(c)


def step_inputs():
    torch.manual_seed(0)
    pre = torch.randn(B, 4 * H) * 3
    pre[0, :8] = torch.tensor([-100.0, 100.0, -30.0, 30.0, 0.0, 1e-4, -1e-4, 88.0])  # saturated
    return pre, torch.randn(B, H) * 4


@needs_compiler
def test_forward_step_equals_torch_functions(kernels):
    pre, c_prev = step_inputs()
    a, c, tanh_c, h = pre.clone(), *(torch.empty(B, H) for _ in range(3))
    kernels.forward(B, H, *(x.data_ptr() for x in (a, c_prev, c, tanh_c, h)))
    i, f, g, o = pre.double().chunk(4, dim=1)
    expected_c, expected_h = cell(pre.double(), c_prev.double())
    expected = [torch.cat([i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()], 1), expected_c,
                expected_c.tanh(), expected_h]
    for ours, theirs in zip((a, c, tanh_c, h), expected):
        assert torch.allclose(ours.double(), theirs, atol=2e-6, rtol=1e-6)


@needs_compiler
def test_backward_step_equals_autograd(kernels):
    pre, c_prev = step_inputs()
    dh, dc_next = torch.randn(B, H), torch.randn(B, H)
    # the forward kernel's outputs are the backward kernel's inputs
    a, c, tanh_c, h = pre.clone(), *(torch.empty(B, H) for _ in range(3))
    kernels.forward(B, H, *(x.data_ptr() for x in (a, c_prev, c, tanh_c, h)))
    dc, d_pre = dc_next.clone(), torch.empty(B, 4 * H)
    kernels.backward(B, H, *(x.data_ptr() for x in (a, c_prev, tanh_c, dh, dc, d_pre)))

    pre64, c_prev64 = (x.double().requires_grad_() for x in (pre, c_prev))
    c64, h64 = cell(pre64, c_prev64)
    loss = (h64 * dh.double()).sum() + (c64 * dc_next.double()).sum()
    expected_d_pre, expected_dc = torch.autograd.grad(loss, (pre64, c_prev64))
    assert torch.allclose(d_pre.double(), expected_d_pre, atol=2e-6, rtol=1e-5)
    assert torch.allclose(dc.double(), expected_dc, atol=2e-6, rtol=1e-5)


class Counting:
    """StepKernels' stand-in that counts the calls it passes on."""

    def __init__(self, real: StepKernels):
        self.real, self.calls = real, {"forward": 0, "backward": 0}
        self.per_step, self.one = real.per_step, real.one

    def forward(self, *args):
        self.calls["forward"] += 1
        self.real.forward(*args)

    def backward(self, *args):
        self.calls["backward"] += 1
        self.real.backward(*args)


@needs_compiler
@pytest.mark.parametrize("onehot", [True, False])
@pytest.mark.parametrize("strided_state", [False, True])
def test_scratch_backend_runs_its_steps_in_the_kernels_with_unchanged_results(
        kernels, monkeypatch, onehot, strided_state):
    counting = Counting(kernels)
    monkeypatch.setattr(native, "step_kernels", lambda: counting)
    T, V, layers = 7, 11, 2
    torch.manual_seed(1)
    fast = ScratchLSTM(V, H, layers, onehot=onehot)
    eager = ScratchLSTM(V, H, layers, onehot=onehot, native=False)
    eager.load_state_dict(fast.state_dict())
    x = torch.randint(0, V, (B, T)) if onehot else torch.randn(B, T, V)
    state = tuple(torch.randn(layers, B, H) for _ in range(2))
    if strided_state:  # the same numbers, not laid out as the kernels read them
        state = tuple(s.transpose(1, 2).contiguous().transpose(1, 2) for s in state)
        assert not state[1][0].is_contiguous()
    results = []
    for lstm in (fast, eager):
        out, (h, c) = lstm(x, state)
        loss = out.sin().sum() + (h ** 2).sum() + c.cos().sum()
        results.append((out, h, c, *torch.autograd.grad(loss, list(lstm.parameters()))))
    assert counting.calls == {"forward": T * layers, "backward": T * layers}
    for ours, theirs in zip(*results):
        assert torch.allclose(ours, theirs, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # evaluation and sampling warm-up run through them too
        fast(x, state)
    assert counting.calls["forward"] == 2 * T * layers


@needs_compiler
def test_the_library_is_built_once_and_then_reused(tmp_path):
    first = native.build(tmp_path)
    stamp = first.stat().st_mtime_ns
    assert native.build(tmp_path) == first and first.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no partial files left


@needs_compiler
def test_an_unwritable_cache_is_named(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(NativeUnavailable, match="cannot create the kernel cache .*not-a-folder"):
        native.build(blocker / "lyricgen")


@needs_compiler
def test_a_compile_error_is_one_line_naming_the_file(tmp_path, monkeypatch):
    broken = tmp_path / "lstm_step.c"
    broken.write_text("this is not C\n")
    monkeypatch.setattr(native, "SOURCE", broken)
    with pytest.raises(NativeUnavailable, match="could not build lstm_step.c: ") as e:
        native.build(tmp_path / "cache")
    assert "\n" not in str(e.value)


def test_no_compiler_means_pytorch_ops_and_a_note(fresh_load, monkeypatch, lyrics_file,
                                                  tmp_path):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # nothing built before
    assert native.step_kernels() is None
    assert "no-such-cc" in native.unavailable_reason()
    logs: list[str] = []
    result = runs.train(None, tiny_options(lyrics_file, tmp_path / "run", epochs=2,
                                           backend="scratch"),
                        log=logs.append, progress_bar=False)
    assert result.history[-1]["train_ppl"] < result.history[0]["train_ppl"]
    notes = [line for line in logs if line.startswith("note:")]
    assert len(notes) == 1 and "no-such-cc" in notes[0] and "slower" in notes[0]


def test_without_triton_cuda_steps_run_as_pytorch_ops_and_say_why(monkeypatch):
    monkeypatch.setattr(triton_step, "triton", None)
    triton_step._load.cache_clear()
    try:
        assert triton_step.step_kernels() is None
        assert triton_step.unavailable_reason() == "Triton is not installed"
        # which kernels a weight gets: C for float32 on the CPU, none for float64
        assert step_kernels(torch.zeros(1)) is native.step_kernels()
        assert step_kernels(torch.zeros(1, dtype=torch.float64)) is None
    finally:
        triton_step._load.cache_clear()
