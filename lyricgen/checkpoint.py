"""One self-describing checkpoint file: atomic save, and a load that never runs code.

A checkpoint is a dict of plain values and tensors (weights, vocab, settings, optimizer state,
progress, RNG states, metrics history), written with `torch.save` to a temporary file in the
same folder, fsynced and renamed into place, and read with `torch.load(weights_only=True)`,
which refuses any pickle that would import or call something.
"""

from __future__ import annotations

import os
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch

from lyricgen import __version__
from lyricgen.config import Config
from lyricgen.errors import LyricgenError
from lyricgen.models.lm import CharLM
from lyricgen.vocab import Vocab

FORMAT = "lyricgen-checkpoint"
VERSION = 1


class CheckpointError(LyricgenError):
    pass


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """Write `payload` to `path` atomically: a crash at any moment leaves the old file intact."""
    payload = {"format": FORMAT, "version": VERSION, "lyricgen": __version__, **payload}
    _write_atomically(path, lambda f: torch.save(payload, f))


def copy_checkpoint(source: Path, path: Path) -> None:
    with source.open("rb") as src:
        _write_atomically(path, lambda f: shutil.copyfileobj(src, f))


def _write_atomically(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except (OSError, RuntimeError) as e:
        tmp.unlink(missing_ok=True)
        reason = getattr(e, "strerror", None) or str(e).splitlines()[0]
        kept = "the previous one is kept" if path.exists() else "nothing was written"
        raise CheckpointError(f"could not write checkpoint {path} ({reason}); {kept}") from None


def remove_stale_temporaries(folder: Path) -> None:
    """Delete the temporary files of checkpoint writes whose process was killed mid-write."""
    for tmp in folder.glob(".*.pt.*.tmp"):
        pid = tmp.name.split(".")[-2]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would end the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some file systems cannot open folders; the rename is done regardless
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's dict, checked to be a lyricgen checkpoint this version can read."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a checkpoint file" if path.is_dir() else "not found"
        raise CheckpointError(f"checkpoint {path} {what} (train one with `lyricgen train`)")
    damaged = f"{path} is not a readable checkpoint: damaged or not a lyricgen file"
    if not zipfile.is_zipfile(path):  # torch.save writes zip archives; never unpickle the rest
        raise CheckpointError(f"{damaged} (not a PyTorch zip archive)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        code = [line.strip() for line in str(e).splitlines() if "GLOBAL" in line]
        if code:
            raise CheckpointError(f"refused to load {path}: loading it would run code, which "
                                  f"lyricgen never does ({code[0][:120]})") from None
        raise CheckpointError(f"{damaged} ({first_line(e)})") from None
    except Exception as e:  # truncated, foreign zip, ...: torch raises many kinds
        raise CheckpointError(f"{damaged} ({first_line(e)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a lyricgen checkpoint")
    version = payload.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(f"{path} was written by a newer lyricgen (format {version}; this "
                              f"is {__version__}, reading format {VERSION}); upgrade lyricgen")
    return payload


def model_from_checkpoint(payload: dict[str, Any], source: str, backend: str | None = None
                          ) -> tuple[CharLM, Vocab, Config]:
    """Rebuild vocab, settings and model (on CPU) from the checkpoint alone.

    `backend` swaps the LSTM implementation: both have the same parameter names and shapes.
    """
    try:
        config = Config.from_dict(payload["config"], source=source)
        if backend is not None:
            config.model.backend = backend
        config.validate()
        vocab = Vocab.from_dict(payload["vocab"])
        model = CharLM(len(vocab), config.model)
        model.load_state_dict(payload["model"])
    except LyricgenError as e:
        raise CheckpointError(f"{source} holds bad settings: {e}") from None
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{source} is damaged ({first_line(e)})") from None
    model.eval()
    return model, vocab, config


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    line = text[0] if text else type(e).__name__
    return line if len(line) <= 160 else line[:157] + "..."
