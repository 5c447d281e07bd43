"""Setting up a training run: its settings (from options, or from the checkpoint a resumed run
continues), its output folder, its corpus; then the Trainer."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from lyricgen.checkpoint import (CheckpointError, first_line, load_checkpoint,
                                 model_from_checkpoint, remove_stale_temporaries)
from lyricgen.config import Config, TrainConfig, load_config
from lyricgen.corpus import load_corpus
from lyricgen.errors import LyricgenError, UsageError
from lyricgen.train import Log, Trainer, TrainResult

# What a resumed run may change; everything else must stay as the checkpoint has it.
RESUMABLE = {"epochs", "time_limit", "device", "cuda_graphs", "preview_every", "prefix",
             "patience", "out"}
OUTPUTS = ("last.pt", "best.pt", "metrics.jsonl")


def train(config_file: str | None, overrides: dict[str, Any], *, resume: bool = False,
          overwrite: bool = False, log: Log = print, progress_bar: bool = True) -> TrainResult:
    """`lyricgen train`: a new run, or `resume` the one in the output folder."""
    payload = None
    if resume:
        if config_file:
            raise UsageError("--resume continues with the settings stored in the checkpoint; "
                             "drop --config")
        fixed = sorted(set(overrides) - RESUMABLE)
        if fixed:
            raise UsageError(f"--resume keeps the checkpoint's settings, so --"
                             f"{fixed[0].replace('_', '-')} cannot be given (may change: "
                             f"{', '.join('--' + k.replace('_', '-') for k in sorted(RESUMABLE))})")
        out = Path(overrides.get("out", TrainConfig.out))
        last = out / "last.pt"
        if not last.exists():
            raise LyricgenError(f"nothing to resume: {last} does not exist")
        payload = load_checkpoint(last)
        model_from_checkpoint(payload, str(last))  # damaged settings, vocab or weights: stop now
        cfg = Config.from_dict(payload["config"], source=str(last))
        cfg.train.time_limit = None  # a time limit is for one invocation, not inherited
        cfg = cfg.with_overrides(overrides).validate()
    else:
        cfg = load_config(config_file, overrides)
    out = Path(cfg.train.out)
    check_out_dir(out, fresh=not resume, overwrite=overwrite)

    corpus = load_corpus(cfg.data)
    if payload is not None and payload.get("corpus_sha256") != corpus.sha256:
        raise LyricgenError(f"the corpus {cfg.data.data} is not the text this checkpoint was "
                            "trained on (its fingerprint differs); resume needs the same text")
    trainer = Trainer(cfg, corpus, out, log=log, progress_bar=progress_bar)
    if payload is not None:
        try:
            trainer.load_state_dict(payload)
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as e:
            raise CheckpointError(f"{out / 'last.pt'} is damaged: its training state cannot be "
                                  f"restored ({type(e).__name__}: {first_line(e)})") from None
        log(f"resuming {out / 'last.pt'} after epoch {trainer.progress.epoch}"
            + (f", batch {trainer.progress.batch}" if trainer.progress.batch else ""))
    elif overwrite:
        clear_outputs(out)
    remove_stale_temporaries(out)  # left by a run killed while writing a checkpoint
    return trainer.run()


def clear_outputs(out: Path) -> None:
    """Remove an earlier run's files (only once the new run's settings proved valid)."""
    for name in OUTPUTS:
        (out / name).unlink(missing_ok=True)


def check_out_dir(out: Path, fresh: bool, overwrite: bool) -> None:
    """`out` is (made) a writable folder; a new run does not write over an old run's checkpoint
    unless told to."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise LyricgenError(f"--out {out} is not a writable folder ({e.strerror})") from None
    if fresh and not overwrite and (out / "last.pt").exists():
        raise UsageError(f"{out} already holds a training run (last.pt); continue it with "
                         "--resume, start over with --overwrite, or choose another --out")
