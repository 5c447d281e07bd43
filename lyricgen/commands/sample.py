"""`lyricgen sample`: a checkpoint and prefixes in, texts out: free text of `length` characters,
or, with `lines` (or `acrostic`), songs in a form."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import torch

from lyricgen import checkpoint, fingerprint, rhyme
from lyricgen.config import SampleConfig, load_config
from lyricgen.device import resolve_device
from lyricgen.errors import UsageError
from lyricgen.models import BACKENDS
from lyricgen.form import Form, check_vocab, make_form
from lyricgen.sampler import generate, start_ids
from lyricgen.songwriter import Line, write_songs
from lyricgen.vocab import UnknownCharsError, UnknownPolicy

Stream = Callable[..., None]
SETTINGS = {f.name for f in fields(SampleConfig)}  # the options that make a SampleConfig


def settings(config_file: str | None, given: dict[str, Any]) -> SampleConfig:
    """The preset's [sample] table (defaults without one), then the options given."""
    preset = load_config(config_file, {}).sample if config_file else SampleConfig()
    cfg = replace(preset, **given)
    cfg.validate()
    return cfg


def sample(path: Path, prefixes: list[str], cfg: SampleConfig, *,
           backend: str | None = None, device: str = "auto", unknown: UnknownPolicy = "error",
           warn: Callable[[str], None] = print, stream: Stream | None = None
           ) -> list[dict[str, Any]]:
    """`cfg.num_samples` continuations of each prefix. With `stream`, each character is passed
    to it as it is made (for a terminal; meant for one sample per prefix)."""
    cfg.validate()
    if backend is not None and backend not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    form = song_form(cfg)
    dev = resolve_device(device)
    saved = checkpoint.load(path)
    model, vocab = saved.build_model(backend).to(dev), saved.vocab
    if form is not None:
        check_vocab(form, vocab)
    if cfg.no_copy and saved.line_hashes is None:
        raise UsageError(f"{path} holds no fingerprint of its training lines (an older "
                         "lyricgen wrote it), which --no-copy needs; train it again")
    generator = torch.Generator(dev)
    if cfg.seed is not None:
        generator.manual_seed(cfg.seed)
    else:
        generator.seed()
    settings = {**asdict(cfg), "seed": generator.initial_seed(), "checkpoint": str(path),
                "backend": backend or saved.config.model.backend}
    results = []
    for prefix in prefixes:
        try:
            ids, used = start_ids(vocab, prefix, unknown, generator)
        except UnknownCharsError as e:
            raise UsageError(f"prefix {prefix!r}: {e}; use --unknown skip to drop them") from None
        if unknown == "skip" and vocab.unknown(prefix):
            warn(f"prefix {prefix!r}: skipped characters not in the vocabulary: "
                 + ", ".join(map(repr, vocab.unknown(prefix))))
        if form is not None:
            if form.acrostic is not None and used:
                raise UsageError("--acrostic sets how every line starts; drop --prefix")
            songs = write_songs(model, vocab, ids, used, form, cfg, generator,
                                saved.line_hashes)
            texts = ["\n".join(line.text for line in song)[len(used):] for song in songs]
            for text in texts if stream is not None else ():
                stream(used + text, end=True)
        else:
            on_step = None
            if stream is not None:
                stream(used)
                on_step = lambda ids: stream(vocab.chars[int(ids[0])])  # noqa: E731
            texts = [vocab.decode(s) for s in generate(model, ids, cfg, generator, on_step)]
            if stream is not None:
                stream("", end=True)
            songs = [free_lines(used + text, saved.line_hashes) for text in texts]
        results += [{"prefix": prefix, "prefix_used": used, "sample": k, "text": text,
                     "lines": [asdict(line) for line in song], "settings": settings}
                    for k, (text, song) in enumerate(zip(texts, songs))]
    return results


def song_form(cfg: SampleConfig) -> Form | None:
    """The form `cfg` asks for; None for free text."""
    if cfg.lines is None and cfg.acrostic is None:
        given = [name for name, value in (("--line-length", cfg.line_length),
                                          ("--rhyme", cfg.rhyme),
                                          ("--rhyme-with", cfg.rhyme_with),
                                          ("--no-copy", cfg.no_copy),
                                          ("--candidates", cfg.candidates > 1)) if value]
        if given:
            raise UsageError(f"{', '.join(given)} shape the lines of a song: give --lines N "
                             "(or --acrostic) too")
        return None
    return make_form(cfg.lines, cfg.line_length, cfg.rhyme, cfg.rhyme_with, cfg.acrostic)


def free_lines(text: str, hashes) -> list[Line]:
    """The lines of free text, described as a song's are (no scores: nothing was judged)."""
    copied = lambda line: None if hashes is None else fingerprint.contains(hashes, line)  # noqa: E731
    return [Line(line, rhyme.line_key(line), copied(line), None) for line in text.split("\n")]
