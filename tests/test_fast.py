"""The scratch LSTM's fast paths against its readable one: the C step kernels against torch's
functions and autograd, the hand-written BPTT against autograd through `lstm_layer`, the check
every compiled kernel passes before use, the choice of path, the build cache, and the readable
path (with a note) where no kernels can be had."""

from __future__ import annotations

import shutil

import pytest
import torch

from conftest import tiny_options
from lyricgen.commands.train import train
from lyricgen.models import fast
from lyricgen.models.fast import c_kernels, triton_kernels
from lyricgen.models.fast.bptt import KernelUnavailable
from lyricgen.models.fast.c_kernels import CStepKernels
from lyricgen.models.cell import lstm_layer
from lyricgen.models.scratch import ScratchLSTM

needs_compiler = pytest.mark.skipif(
    not any(shutil.which(c) for c in ("cc", "gcc", "clang")),
    reason="no C compiler on this machine: the kernels cannot exist here, training uses "
           "the readable path (test_no_compiler_means_the_readable_path_and_a_note covers that)")
B, H = 5, 19  # H not a multiple of the vector width, so the loops' tails run too


@pytest.fixture
def fresh_load():
    fast._load.cache_clear()
    yield
    fast._load.cache_clear()


@pytest.fixture(scope="module")
def kernels(tmp_path_factory) -> CStepKernels:
    return CStepKernels.open(c_kernels.build(tmp_path_factory.mktemp("cache")))


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


class Sabotaged:
    """Real kernels with one output made slightly wrong: what the check must catch."""

    def __init__(self, real: CStepKernels, wrong: str):
        self.real, self.wrong, self.name = real, wrong, "sabotaged"
        self.one, self.per_step = real.one, real.per_step

    def forward(self, B, H, a, c_prev, c, tanh_c, h):
        self.real.forward(B, H, a, c_prev, c, tanh_c, h)
        if self.wrong == "forward":
            self.nudge(h, B * H)

    def backward(self, B, H, a, c_prev, tanh_c, dh, dc, d_pre):
        self.real.backward(B, H, a, c_prev, tanh_c, dh, dc, d_pre)
        if self.wrong == "backward":  # the gradient of the last gate only
            self.nudge(d_pre + 4 * (4 * H - 1), 1)

    @staticmethod
    def nudge(pointer: int, n: int) -> None:
        import ctypes

        values = (ctypes.c_float * n).from_address(pointer)
        values[n - 1] += 1e-3


@needs_compiler
def test_the_check_passes_the_kernels_and_catches_a_wrong_forward_or_backward(kernels):
    fast.check(kernels, torch.device("cpu"))
    for wrong in ("forward", "backward"):
        with pytest.raises(KernelUnavailable, match="sabotaged step kernels disagreed with "
                                                    "cell.lstm_cell"):
            fast.check(Sabotaged(kernels, wrong), torch.device("cpu"))


def test_the_check_names_kernels_that_fail_to_run():
    class Broken:
        name = "broken"
        one = staticmethod(lambda x: x)

        def forward(self, *args):
            raise OSError("illegal instruction\nmore")

    with pytest.raises(KernelUnavailable, match=r"^the broken step kernels failed to run "
                                                r"\(OSError: illegal instruction\)$"):
        fast.check(Broken(), torch.device("cpu"))


@needs_compiler
@pytest.mark.parametrize("with_state", [False, True])
def test_hand_written_bptt_equals_autograd_through_the_readable_layer(with_state):
    T = 7
    gen = torch.Generator().manual_seed(3)
    x_proj, w_hh, h0, c0 = (torch.randn(*shape, generator=gen, requires_grad=True)
                            for shape in ((T, B, 4 * H), (4 * H, H), (B, H), (B, H)))
    if not with_state:
        h0, c0 = (torch.zeros(B, H, requires_grad=True) for _ in range(2))
    path = fast.choose(w_hh)
    assert path.name == "c"
    results = []
    for run in (path.run_layer, lstm_layer):
        hs, c = run(x_proj, w_hh, h0, c0)
        loss = hs.sin().sum() + (hs[-1] ** 2).sum() + c.cos().sum()
        results.append((hs, c, *torch.autograd.grad(loss, (x_proj, w_hh, h0, c0))))
    for ours, theirs in zip(*results):
        assert torch.allclose(ours, theirs, atol=1e-5, rtol=1e-5)


@needs_compiler
@pytest.mark.parametrize("onehot", [True, False])
@pytest.mark.parametrize("strided_state", [False, True])
def test_the_fast_scratch_lstm_equals_the_readable_one(onehot, strided_state):
    T, V, layers = 7, 11, 2
    torch.manual_seed(1)
    quick = ScratchLSTM(V, H, layers, onehot=onehot)
    readable = ScratchLSTM(V, H, layers, onehot=onehot, fast=False)
    readable.load_state_dict(quick.state_dict())
    assert fast.choose(quick.weight_hh_l0).name == "c"
    x = torch.randint(0, V, (B, T)) if onehot else torch.randn(B, T, V)
    state = tuple(torch.randn(layers, B, H) for _ in range(2))
    if strided_state:  # the same numbers, not laid out as the kernels read them
        state = tuple(s.transpose(1, 2).contiguous().transpose(1, 2) for s in state)
        assert not state[1][0].is_contiguous()
    results = []
    for lstm in (quick, readable):
        out, (h, c) = lstm(x, state)
        loss = out.sin().sum() + (h ** 2).sum() + c.cos().sum()
        results.append((out, h, c, *torch.autograd.grad(loss, list(lstm.parameters()))))
        with torch.no_grad():  # evaluation and sampling warm-ups: the forward steps alone
            assert torch.allclose(lstm(x, state)[0], out, atol=1e-6)
    for ours, theirs in zip(*results):
        assert torch.allclose(ours, theirs, atol=1e-5, rtol=1e-5)


def test_the_path_follows_device_and_dtype(monkeypatch, fresh_load):
    monkeypatch.setattr(triton_kernels, "triton", None)
    with pytest.raises(KernelUnavailable, match="Triton is not installed"):
        triton_kernels.load()
    readable = fast.choose(torch.zeros(1, dtype=torch.float64))
    assert readable.name == "readable" and readable.kernels is None and readable.note() is None
    c_or_readable = fast.choose(torch.zeros(1))
    assert c_or_readable.name == ("c" if shutil.which("cc") or shutil.which("gcc") else "readable")


@needs_compiler
def test_the_library_is_built_once_and_then_reused(tmp_path):
    first = c_kernels.build(tmp_path)
    stamp = first.stat().st_mtime_ns
    assert c_kernels.build(tmp_path) == first and first.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no partial files left


@needs_compiler
def test_an_unwritable_cache_is_named(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(KernelUnavailable, match="cannot create the kernel cache .*not-a-folder"):
        c_kernels.build(blocker / "lyricgen")


@needs_compiler
def test_a_compile_error_is_one_line_naming_the_file(tmp_path, monkeypatch):
    broken = tmp_path / "lstm_step.c"
    broken.write_text("this is not C\n")
    monkeypatch.setattr(c_kernels, "SOURCE", broken)
    with pytest.raises(KernelUnavailable, match="could not build lstm_step.c: ") as e:
        c_kernels.build(tmp_path / "cache")
    assert "\n" not in str(e.value)


def test_no_compiler_means_the_readable_path_and_a_note(fresh_load, monkeypatch, lyrics_file,
                                                        tmp_path):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # nothing built before
    path = fast.choose(torch.zeros(1))
    assert path.name == "readable" and "no-such-cc" in path.why
    logs: list[str] = []
    result = train(None, tiny_options(lyrics_file, tmp_path / "run", epochs=2,
                                      backend="scratch"), log=logs.append, progress_bar=False)
    assert result.history[-1]["train_ppl"] < result.history[0]["train_ppl"]
    notes = [line for line in logs if line.startswith("note:")]
    assert len(notes) == 1 and "no-such-cc" in notes[0] and "readable" in notes[0]


# --- the kernel cache is private (issue 18) -----------------------------------------------------

@needs_compiler
def test_the_kernel_cache_is_created_private(tmp_path):
    library = c_kernels.build(tmp_path / "xdg" / "lyricgen")
    assert (library.parent.stat().st_mode & 0o777) == 0o700
    assert library.stat().st_mode & 0o077 == 0  # the library too, whatever the umask


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """A library put under the cache name of the real one (the name is computable from public
    values) in a fresh XDG_CACHE_HOME: here the real bytes, in a file of its own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    library = c_kernels.build(c_kernels.cache_dir())
    raw = library.read_bytes()
    library.unlink()
    library.write_bytes(raw)
    library.chmod(0o700)
    return library


def _seen_as_another_users(library, monkeypatch) -> None:
    uid = library.stat().st_uid
    monkeypatch.setattr("os.geteuid", lambda: uid + 1)


def _symlinked(library, monkeypatch) -> None:
    real = library.with_suffix(".elsewhere")
    library.replace(real)
    library.symlink_to(real)


OPENINGS = {  # how a planted library could get there, and what build() must say then
    "folder open to all": (lambda lib, mp: lib.parent.chmod(0o777),
                           r"kernel cache folder .* is writable by group or others \(mode 777\)"),
    "folder open to the group": (lambda lib, mp: lib.parent.chmod(0o770),
                                 r"folder .* is writable by group or others \(mode 770\)"),
    "library writable by others": (lambda lib, mp: lib.chmod(0o666),
                                   r"compiled library .* is writable by group or others"),
    "owned by someone else": (_seen_as_another_users,
                              r"kernel cache folder .* is owned by another user"),
    "library is a symlink": (_symlinked, r"compiled library .* is not a regular file"),
}


@needs_compiler
@pytest.mark.parametrize("opening", list(OPENINGS))
def test_a_planted_library_is_never_loaded(planted, monkeypatch, opening):
    open_it, message = OPENINGS[opening]
    open_it(planted, monkeypatch)
    with pytest.raises(KernelUnavailable, match=message) as e:
        c_kernels.load()
    assert "\n" not in str(e.value) and "chmod 700" in str(e.value)


@needs_compiler
def test_a_private_cache_is_trusted(planted):
    assert c_kernels.load().path == planted


@needs_compiler
def test_an_open_cache_means_the_readable_path_and_a_note(planted, fresh_load, lyrics_file,
                                                          tmp_path):
    planted.parent.chmod(0o777)
    path = fast.choose(torch.zeros(1))
    assert path.name == "readable" and path.kernels is None
    logs: list[str] = []
    train(None, tiny_options(lyrics_file, tmp_path / "run", epochs=1, backend="scratch"),
          log=logs.append, progress_bar=False)
    notes = [line for line in logs if line.startswith("note:")]
    assert len(notes) == 1 and "kernel cache folder" in notes[0] and "writable" in notes[0]
