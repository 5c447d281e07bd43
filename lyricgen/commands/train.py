"""`lyricgen train`: a new run from settings, or the run in --out resumed; its output folder
and corpus; then set-up and the loop."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lyricgen import checkpoint, sizing
from lyricgen.config import Config, TrainConfig, check_out_name
from lyricgen.data.corpus import Corpus, load_corpus
from lyricgen.device import resolve_device
from lyricgen.errors import LyricgenError, UsageError, plural
from lyricgen.files import remove_stale_temporaries
from lyricgen.presets import flat_keys, load_config, naming_sources, option_name, read_toml
from lyricgen.run_folder import check_out_dir, clear_outputs, make_out_dir
from lyricgen.run_lock import RunLock
from lyricgen.training.distributed import World, join, leave, world_from_env
from lyricgen.training.init_from import transplant
from lyricgen.training.loop import Trainer, TrainResult
from lyricgen.training.probe import measure_speed
from lyricgen.training.reporting import Log, model_line
from lyricgen.training.setup import set_up

# What a resumed run may change; everything else must equal what the checkpoint has.
RESUMABLE = {"epochs", "time_limit", "device", "cuda_graphs", "matmul", "preview_every",
             "prefix", "patience", "out", "data"}


def train(config_file: str | None, overrides: dict[str, Any], *, resume: bool = False,
          overwrite: bool = False, log: Log = print, progress_bar: bool = True) -> TrainResult:
    """A new run, or with `resume` the one in the output folder; the folder is locked
    against other runs from before anything in it is read or written until the end. Started
    by torchrun, this is one of its processes: rank 0 alone tells, writes and locks."""
    world = world_from_env()
    if not world.main:
        log, progress_bar = (lambda message: None), False
    lock = RunLock()
    try:
        result = start(config_file, overrides, resume, overwrite, log, progress_bar, lock,
                       world).run()
        result.reported = world.main
        world.wait_for_all()  # none leaves the group while another still uses it
        return result
    finally:
        lock.release()
        leave(world)


@dataclass
class Run:
    """The run about to start: its settings and folder; `saved` its last.pt when resumed,
    `source` the checkpoint --init-from names."""
    cfg: Config
    out: Path
    saved: checkpoint.Checkpoint | None = None
    source: checkpoint.Checkpoint | None = None


def start(config_file: str | None, overrides: dict[str, Any], resume: bool, overwrite: bool,
          log: Log, progress_bar: bool, lock: RunLock, world: World) -> Trainer:
    """The Trainer of the run, with its folder made and locked."""
    run = (resumed_run(config_file, overrides, lock, world) if resume
           else new_run(config_file, overrides))
    if world.main:
        lock.hold_if_there(run.out)
    check_out_dir(run.out, fresh=not resume, overwrite=overwrite)
    join(world, cuda=resolve_device(run.cfg.train.device).type == "cuda")
    # The slow parts (corpus, model, compiled kernels) follow: say at once what is starting.
    log(starting_line(run.cfg, run.saved))
    corpus = read_corpus(run)
    chosen = None
    if run.saved is None:  # (a resumed run keeps its settings and its strength)
        chosen = sized(run.cfg, corpus, given_keys(config_file, overrides), log, world)
        run.cfg = chosen.cfg
    trainer = make_trainer(run, corpus, log, progress_bar, world)
    if chosen is not None:  # where the regularisation starts, and what training may raise
        trainer.progress.strength, trainer.progress.strengthening = chosen.strength, chosen.free
    if world.main:
        if run.saved is None:
            make_out_dir(run.out)
            lock.hold(run.out)
            if overwrite:
                clear_outputs(run.out)
        remove_stale_temporaries(run.out)  # left by a run killed while writing a checkpoint
    return trainer


def resumed_run(config_file: str | None, overrides: dict[str, Any], lock: RunLock,
                world: World) -> Run:
    """The run in --out, read from its last.pt (locked first), with its own settings."""
    if overrides.get("init_from") is not None:
        raise UsageError("--init-from starts a new run from another's weights; --resume "
                         "continues this one: give one of them")
    with naming_sources(None, {}, overrides):
        out = Path(check_out_name(overrides.get("out", TrainConfig.out)))
    if world.main:
        lock.hold_if_there(out)
    last = out / "last.pt"
    if not last.exists():
        raise LyricgenError(f"nothing to resume: {last} does not exist")
    saved = checkpoint.load(last, training_state=True)
    saved.build_model()  # damaged weights: stop now
    cfg = resumed_config(saved.config, config_file, overrides)
    return Run(cfg, Path(cfg.train.out), saved=saved)


def new_run(config_file: str | None, overrides: dict[str, Any]) -> Run:
    """A new run's settings: options over the preset over the --init-from model's over the
    defaults."""
    source = init_source(config_file, overrides)
    base = None if source is None else Config(model=replace(source.config.model))
    cfg = load_config(config_file, overrides, base)
    return Run(cfg, Path(cfg.train.out), source=source)


def read_corpus(run: Run) -> Corpus:
    """The run's corpus; a resumed run's must be the text it was trained on."""
    corpus = load_corpus(run.cfg.data)
    if run.saved is not None and run.saved.corpus_sha256 != corpus.sha256:
        raise LyricgenError(f"the corpus {run.cfg.data.data} is not the text this checkpoint "
                            "was trained on (its fingerprint differs); resume needs the same "
                            "text")
    return corpus


def sized(cfg: Config, corpus: Corpus, pinned: set[str], log: Log, world: World
          ) -> sizing.Sized:
    """The regularisation not given chosen for the corpus (sizing.py), said."""
    chosen = world.from_main(lambda: sizing.size(cfg, corpus, pinned, measure_speed))
    if chosen.line:
        log(chosen.line)
    return chosen


def make_trainer(run: Run, corpus: Corpus, log: Log, progress_bar: bool, world: World
                 ) -> Trainer:
    """Model, optimizer and batches set up; --init-from's weights carried over, or a resumed
    run's state restored."""
    setup = set_up(run.cfg, corpus, log, world)
    if run.source is not None:
        carried, new = transplant(setup.model, run.source, corpus.vocab)
        log(f"starting from the weights of {run.source.source}: "
            f"{plural(carried, 'character')} carried over, {new} new")
    trainer = Trainer(setup, run.out, log=log, progress_bar=progress_bar)
    if run.saved is not None:
        trainer.restore(run.saved)
    return trainer


def given_keys(config_file: str | None, overrides: dict[str, Any]) -> set[str]:
    """The settings the run was given (options, the preset's keys): sizing leaves them alone.
    (--init-from's model gives the shapes, which sizing never changes; its regularisation is
    chosen afresh for the new text.)"""
    given = set(overrides)
    if config_file:
        given |= set(flat_keys(read_toml(config_file), source=config_file))
    return given


def init_source(config_file: str | None, overrides: dict[str, Any]
                ) -> checkpoint.Checkpoint | None:
    """The checkpoint `--init-from` (or the preset's [train] init_from) names, if any."""
    path = overrides.get("init_from")
    if path is None and config_file:
        path = read_toml(config_file).get("train", {}).get("init_from")
    if path is None:
        return None
    try:
        return checkpoint.load(path)
    except checkpoint.CheckpointError as e:
        raise checkpoint.CheckpointError(f"--init-from: {e}") from None


def starting_line(cfg: Config, saved: checkpoint.Checkpoint | None) -> str:
    """What is starting: the run (resumed from where), model size, corpus and device."""
    out = Path(cfg.train.out)
    if saved is None:
        what = f"training a {cfg.model.backend} LSTM into {out}"
    else:
        p = saved.progress
        what = f"resuming {out / 'last.pt'} after epoch {p.epoch}" + \
            (f", batch {p.batch}" if p.batch else "") + f" ({cfg.model.backend} LSTM)"
    return f"{what}: {model_line(cfg)}"


def resumed_config(stored: Config, config_file: str | None, overrides: dict[str, Any]
                   ) -> Config:
    """The stored settings with what a resumed run may change applied. Settings given again
    (in --config or as options) must equal the stored ones: re-running the command that
    started the run, with --resume added, is how a run is continued."""
    preset = read_toml(config_file) if config_file else {}
    given = flat_keys(preset, source=config_file) if config_file else {}
    given.update(overrides)
    stored.train.time_limit = None  # a time limit is for one invocation, not inherited
    asked = stored.with_overrides(given)  # also checks the values' types
    differ = [key for key in given if key not in RESUMABLE
              and asked.value(key) != stored.value(key)]
    if differ:
        shown = ", ".join(f"{option_name(k)} {asked.value(k)!r} (the run has "
                          f"{stored.value(k)!r})" for k in differ)
        raise UsageError(f"--resume continues with the run's own settings, and these differ "
                         f"from them: {shown}; start a new run with --overwrite or another "
                         "--out to change them")
    with naming_sources(config_file, preset, overrides):
        return stored.with_overrides({k: v for k, v in given.items()
                                      if k in RESUMABLE}).validate()
