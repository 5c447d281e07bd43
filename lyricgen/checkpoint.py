"""The checkpoint file: its format, every key in it, and its version; atomic save, and a load
that never runs code.

A checkpoint holds everything to sample from (weights, vocab, settings, counts, the corpus as
ids) and to resume exactly (optimizer state, Progress, RNG states, metrics history): plain
values and tensors, written with `torch.save` to a temporary file in the same folder, fsynced
and renamed into place, and read with `torch.load(weights_only=True)`, which refuses any
pickle that would import or call something.
"""

from __future__ import annotations

import math
import os
import pickle
import shutil
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from lyricgen import __version__
from lyricgen.config import Config
from lyricgen.errors import LyricgenError, first_line
from lyricgen.files import disk_full, fsync_dir
from lyricgen.models.charlm import CharLM
from lyricgen.counts.text_counts import TextCounts
from lyricgen.data.vocab import Vocab

FORMAT = "lyricgen-checkpoint"
VERSION = 2  # 2: corpus ids instead of line hashes; the corpus's cleaning settings


class CheckpointError(LyricgenError):
    pass


@dataclass
class Progress:
    """Where a training run stands, so that a run stopped at any batch boundary resumes to
    exactly what an unbroken run gives."""

    epoch: int = 0  # epochs completed
    batch: int = 0  # batches done in epoch `epoch + 1` (non-zero only after a mid-epoch stop)
    batch_losses: list[float] = field(default_factory=list)  # of those batches
    hidden: list[torch.Tensor] | None = None  # the carried (h, c) at a mid-epoch stop
    seconds: float = 0.0  # spent on that epoch so far
    best: float = math.inf  # best figure of schedule.sampled_figure (best.pt)
    best_epoch: float = 0  # a fraction for an epoch the time limit cut (loop.py)
    learned: float = math.inf  # best figure of schedule.learning_figure
    bad_epochs: int = 0  # epochs since `learned` improved (early stopping)
    plateau_epochs: int = 0  # likewise, for the plateau schedule
    prev_train_loss: float | None = None  # for the halve-on-increase schedule
    # The regularisation's strength (sizing.settings) and the settings training raises with
    # it (training/regularising.py); none in an older checkpoint or when all were given.
    strength: float = 1.0
    strengthening: list[str] = field(default_factory=list)
    strengthened_at: int = 0  # the epoch after which it last rose

    def start_next_epoch(self, finished: int, train_loss: float) -> None:
        self.epoch, self.batch, self.batch_losses, self.seconds = finished, 0, [], 0.0
        self.hidden, self.prev_train_loss = None, train_loss


@dataclass
class Checkpoint:
    config: Config
    vocab: Vocab
    corpus_sha256: str  # of the normalised training text: a resumed run checks it
    model: dict[str, torch.Tensor]  # CharLM's state_dict
    optimizer: dict[str, Any] | None = None  # None when read without the training state
    progress: Progress = field(default_factory=Progress)
    rng: dict[str, torch.Tensor] = field(default_factory=dict)  # torch's (and CUDA's) RNG state
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics.jsonl's rows
    corpus_ids: torch.Tensor | None = None  # for the copy guard (copies.py); None: older file
    # The counts mixed with the LSTM (TextCounts.state_dict()) and their weights per level and
    # order as the last validation learned them (mixing.py); None: the LSTM alone
    counts: dict[str, Any] | None = None
    source: str = ""  # the file it was read from, for messages

    def build_model(self, backend: str | None = None) -> CharLM:
        """The model on the CPU, in eval mode; `backend` swaps the LSTM implementation (both
        have the same parameter names and shapes)."""
        try:
            model_cfg = self.config.model
            if backend is not None:
                model_cfg = type(model_cfg)(**{**asdict(model_cfg), "backend": backend})
            model_cfg.validate()
            model = CharLM(len(self.vocab), model_cfg)
            model.load_state_dict(self.model)
        except LyricgenError as e:
            raise CheckpointError(f"{self.source} holds bad settings: {e}") from None
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{self.source} is damaged ({first_line(e)})") from None
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            raise CheckpointError(f"{self.source} holds non-finite weights (NaN or inf): its "
                                  "training had diverged; use an earlier checkpoint")
        return model.eval()

    def count_model(self) -> tuple[TextCounts, list[list[float]]] | None:
        """The counts and their weights per level and order, when the run mixed them with the
        LSTM; a checkpoint from before orders were mixed has one weight per level, order n's."""
        if self.counts is None:
            return None
        try:
            counts = TextCounts.from_state_dict(self.counts)
            weights = [[float(w) for w in level] if isinstance(level, list) else
                       [0.0] * (counts.order - 2) + [float(level)]
                       for level in self.counts["weights"]]
            if counts.ngram.vocab_size != len(self.vocab) or len(weights) != counts.order or \
                    any(len(level) != counts.experts() for level in weights) or \
                    counts.joined is not None and self.vocab.chars[counts.newline] != "\n":
                raise ValueError("the counts do not fit the vocabulary")
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as e:
            raise CheckpointError(f"{self.source} is damaged ({first_line(e)})") from None
        return counts, weights


def save(ckpt: Checkpoint, path: Path) -> None:
    """Write `ckpt` to `path` atomically: a crash at any moment leaves the old file intact."""
    payload = {
        "format": FORMAT, "version": VERSION, "lyricgen": __version__,
        "config": ckpt.config.to_dict(),
        "vocab": ckpt.vocab.to_dict(),
        "corpus_sha256": ckpt.corpus_sha256,
        "model": ckpt.model,
        "optimizer": ckpt.optimizer,
        "progress": asdict(ckpt.progress),
        "rng": ckpt.rng,
        "history": ckpt.history,
        "corpus_ids": ckpt.corpus_ids,
        "counts": ckpt.counts,
    }
    _write_atomically(path, lambda f: torch.save(payload, f))


def load(path: str | Path, training_state: bool = False) -> Checkpoint:
    """The checkpoint at `path`, checked to be a lyricgen checkpoint this version can read;
    with `training_state`, also what resuming needs."""
    payload = _read(Path(path))
    source = str(path)
    try:
        config = Config.from_dict(payload["config"], source=source)
        if payload["version"] == 1:  # its corpus was read before cleaning existed
            config.data = replace(config.data, script="keep", tidy_spaces=False, drop_lines="")
        config.validate()
        vocab = Vocab.from_dict(payload["vocab"])
        ckpt = Checkpoint(config, vocab, payload.get("corpus_sha256", ""), payload["model"],
                          corpus_ids=_ids(payload.get("corpus_ids"), len(vocab)),
                          counts=_optional_dict(payload.get("counts")), source=source)
    except LyricgenError as e:
        raise CheckpointError(f"{source} holds bad settings: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{source} is damaged ({first_line(e)})") from None
    if training_state:
        try:
            ckpt.optimizer, ckpt.rng = dict(payload["optimizer"]), dict(payload["rng"])
            ckpt.progress = Progress(**payload["progress"])
            ckpt.history = list(payload["history"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{source} is damaged: its training state cannot be restored "
                                  f"({type(e).__name__}: {first_line(e)})") from None
    return ckpt


def _ids(value: Any, vocab_size: int) -> torch.Tensor | None:
    if value is not None and (not isinstance(value, torch.Tensor) or value.dtype.is_floating_point
                              or value.dim() != 1 or len(value) and not
                              0 <= int(value.min()) <= int(value.max()) < vocab_size):
        raise ValueError("its corpus ids are not ids of its vocabulary")
    return value


def _optional_dict(value: Any) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise TypeError("counts is not a table")
    return value


def copy(source: Path, path: Path) -> None:
    """Copy a checkpoint file, atomically as `save` writes."""
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
        fsync_dir(path.parent)
    except (OSError, RuntimeError) as e:
        tmp.unlink(missing_ok=True)
        reason = getattr(e, "strerror", None) or str(e).splitlines()[0]
        if isinstance(e, RuntimeError):  # torch's zip writer words a short write as a C++ error
            reason = f"the file could not be written in full{disk_full(path.parent)}"
        kept = "the previous one is kept" if path.exists() else "nothing was written"
        raise CheckpointError(f"could not write checkpoint {path} ({reason}); {kept}") from None


def _read(path: Path) -> dict[str, Any]:
    """The file's dict, checked for the format and version."""
    # Checked by stat alone: opening a named pipe would wait for a writer, a device never ends.
    if not path.is_file():
        what = "is a folder, not a checkpoint file" if path.is_dir() else "not found"
        kinds = {"a named pipe (FIFO)": path.is_fifo, "a device": path.is_char_device,
                 "a block device": path.is_block_device, "a socket": path.is_socket}
        kind = next((name for name, test in kinds.items() if test()), None)
        if kind is not None:
            what = f"is not a regular file but {kind}; give the path of a checkpoint file"
        raise CheckpointError(f"checkpoint {path} {what} (train one with `lyricgen train`)")
    damaged = f"{path} is not a readable checkpoint: damaged or not a lyricgen file"
    if not zipfile.is_zipfile(path):  # torch.save writes zip archives; never unpickle the rest
        raise CheckpointError(f"{damaged} (not a PyTorch zip archive)")
    if not _pytorch_archive(path):
        raise CheckpointError(f"{path} is not a lyricgen checkpoint (a zip archive, but not one "
                              "that torch.save wrote)")
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


def _pytorch_archive(path: Path) -> bool:
    """Whether the zip at `path` holds the pickle torch.save writes (`<name>/data.pkl`)."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(name.endswith("/data.pkl") for name in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return True  # torch.load says what is wrong
