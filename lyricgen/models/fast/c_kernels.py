"""The scratch LSTM's per-step elementwise work as C loops (`lstm_step.c`), compiled on first use.

Between its matmuls, each time step of bptt.LSTMLayer needs 3 sigmoids, 2 tanh and the cell
update forward, the gate gradients and the carried dc backward: as PyTorch ops, separate passes
over small (B, H) tensors, each with its own dispatch cost. The C file does each direction in
one loop. The library is built once per machine with the system C compiler ($CC, else cc / gcc
/ clang), cached under $XDG_CACHE_HOME/lyricgen (default ~/.cache/lyricgen) by a hash of
everything that goes into it, and loaded with ctypes.

Loading a library runs its code, and the cache name is computable by anyone, so the cache is
private: the folder is created with mode 0700, and a folder or library that another user owns,
or that group or others may write to, is refused (KernelUnavailable: the readable path runs).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from lyricgen.models.fast.bptt import KernelUnavailable

SOURCE = Path(__file__).with_name("lstm_step.c")
# -march=native is safe because the library is built on, and cached for, the machine that
# runs it; -fopenmp-simd enables the source's simd pragmas, and nothing else of OpenMP.
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd",
         "-shared", "-fPIC"]


@dataclass(frozen=True)
class CStepKernels:
    """bptt.StepKernels as the two C functions: arguments are sizes and data pointers
    (`Tensor.data_ptr()`) of contiguous float32 CPU tensors."""

    name = "C"
    path: Path
    forward: Callable[..., None]  # (B, H, a, c_prev, c, tanh_c, h)
    backward: Callable[..., None]  # (B, H, a, c_prev, tanh_c, dh, dc, d_pre)

    @staticmethod
    def per_step(x: torch.Tensor) -> list[int]:
        """The data pointers of x[0], x[1], ... (x contiguous): the per-step arguments."""
        step = x.stride(0) * x.element_size()
        return [x.data_ptr() + t * step for t in range(x.shape[0])]

    @staticmethod
    def one(x: torch.Tensor) -> int:
        return x.data_ptr()

    @classmethod
    def open(cls, path: Path) -> CStepKernels:
        lib = ctypes.CDLL(str(path))
        long, ptr = ctypes.c_long, ctypes.c_void_p
        lib.lstm_step_forward.argtypes = [long, long] + [ptr] * 5
        lib.lstm_step_backward.argtypes = [long, long] + [ptr] * 6
        for f in (lib.lstm_step_forward, lib.lstm_step_backward):
            f.restype = None
        return cls(path, lib.lstm_step_forward, lib.lstm_step_backward)


def build(cache: Path) -> Path:
    """Compile lstm_step.c into `cache` unless an identical build is there; its path. The
    folder and the library must be private to this user (see the module's doc)."""
    compiler = shlex.split(os.environ.get("CC", "")) or next(
        ([c] for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if compiler is None:
        raise KernelUnavailable("no C compiler found (set CC to one)")
    # -march=native code may not run on another CPU, so the machine is part of the key too.
    key = hashlib.sha256("\0".join([SOURCE.read_text(), *compiler, *FLAGS, platform.node(),
                                    platform.machine()]).encode()).hexdigest()[:16]
    library = cache / f"lstm_step-{key}.so"
    try:
        cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise KernelUnavailable(f"cannot create the kernel cache {cache}: {e}") from e
    require_private(cache, folder=True)
    if os.path.lexists(library):
        require_private(library, folder=False)
        return library
    partial = library.with_name(f"{library.name}.{os.getpid()}.tmp")
    try:
        done = subprocess.run([*compiler, *FLAGS, "-o", str(partial), str(SOURCE), "-lm"],
                              capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise KernelUnavailable(f"running the C compiler {compiler[0]!r} failed: {e}") from e
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["no message"])[0]
        raise KernelUnavailable(f"{compiler[0]} could not build {SOURCE.name}: {first}")
    try:
        os.chmod(partial, 0o700)  # whatever the umask: the next run's check must accept it
        os.replace(partial, library)  # atomic: another process never sees half a library
    except OSError as e:
        raise KernelUnavailable(f"cannot store the compiled kernels in {cache}: {e}") from e
    return library


def require_private(path: Path, folder: bool) -> None:
    """KernelUnavailable unless `path` (the cache folder, or a library in it: never a symlink)
    is owned by this user and writable by no one else."""
    what = "kernel cache folder" if folder else "compiled library"
    try:
        st = os.stat(path) if folder else os.lstat(path)
    except OSError as e:
        raise KernelUnavailable(f"cannot check the {what} {path}: {e}") from e
    if not (stat.S_ISDIR if folder else stat.S_ISREG)(st.st_mode):
        problem = "is not a folder" if folder else "is not a regular file"
    elif hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        problem = f"is owned by another user (uid {st.st_uid})"
    elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    else:
        return
    raise KernelUnavailable(f"the {what} {path} {problem}, so no library is loaded from it "
                            "(that would run whatever code was put there): delete it, or make "
                            f"it yours and private (chmod 700 {path})")


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lyricgen"


def load() -> CStepKernels:
    """The C kernels, built into the cache folder if they are not there yet."""
    library = build(cache_dir())
    try:
        return CStepKernels.open(library)
    except OSError as e:  # the library exists but cannot be loaded
        raise KernelUnavailable(f"loading the compiled kernels failed: {e}") from None
