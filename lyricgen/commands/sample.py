"""`lyricgen sample`: a checkpoint and prefixes in, texts out: free text of `length` characters,
or, with `lines` (or `acrostic`), songs in a form."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import torch

from lyricgen import checkpoint
from lyricgen.config import SampleConfig
from lyricgen.copies import DEFAULT_RUN, CopyIndex
from lyricgen.presets import load_config, naming_sources, option_name, read_toml
from lyricgen.device import resolve_device
from lyricgen.errors import UsageError
from lyricgen.models import BACKENDS
from lyricgen.songs.form import Form, check_vocab, free_form, make_form
from lyricgen.memory import human_bytes, require
from lyricgen.models.charlm import ModelConfig
from lyricgen.sampler import generate, start_ids
from lyricgen.commands.sample_output import LineStream, Stream, copy_marker
from lyricgen.songs.songwriter import Line, Songwriter, SongRequest, line_of
from lyricgen.data.vocab import UnknownCharsError, UnknownPolicy, Vocab

SETTINGS = {f.name for f in fields(SampleConfig)}  # the options that make a SampleConfig


def settings(config_file: str | None, given: dict[str, Any]) -> SampleConfig:
    """The preset's [sample] table (defaults without one), then the options given."""
    preset = read_toml(config_file) if config_file else {}
    defaults = load_config(config_file, {}).sample if config_file else SampleConfig()
    with naming_sources(config_file, preset, given, table="sample"):
        cfg = replace(defaults, **given)
        cfg.validate()
    return cfg


def sample(path: Path, prefixes: list[str], cfg: SampleConfig, *,
           backend: str | None = None, device: str = "auto", unknown: UnknownPolicy = "error",
           warn: Callable[[str], None] = print, stream: Stream | None = None,
           mark_copies: bool = False) -> list[dict[str, Any]]:
    """`cfg.num_samples` continuations of each prefix: lines drawn with candidates (songwriter.py)
    or, with one candidate and no form, characters. With `stream` (meant for one sample per
    prefix), the text goes to it as it is made, a line or a character at a time, and nothing
    is returned; `mark_copies` then marks each line that copies the corpus (when copies are
    allowed)."""
    cfg.validate()
    if backend is not None and backend not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    form = song_form(cfg)
    dev = resolve_device(device)
    saved = checkpoint.load(path)
    check_sampling_memory(saved.config.model, len(saved.vocab), cfg, form is None and stream is None,
                 dev)
    model, vocab = saved.build_model(backend).to(dev), saved.vocab
    if form is not None:
        check_vocab(form, vocab)
    elif cfg.candidates > 1 and "\n" in vocab.index:  # free text, a line at a time
        form = free_form(cfg.length)
    copies = copy_index(saved, cfg, warn)
    copies = copies.to(dev) if copies is not None else None
    marker = copy_marker(cfg, copies, mark_copies)
    generator = seeded(cfg, dev)
    used_settings = settings_used(cfg, generator, path, backend or saved.config.model.backend)
    starts = [start(vocab, prefix, unknown, generator, warn) for prefix in prefixes]
    check_starts(form, [used for _, used in starts])
    counts = saved.count_model() if cfg.counts else None
    if counts is not None:
        counts[0].to(dev)
    writer = Songwriter(model, vocab, copies, counts)
    results = []
    for prefix, (ids, used) in zip(prefixes, starts):
        if form is not None:
            lines = LineStream(stream, marker, used, form.chars) if stream else None
            songs = writer.write(SongRequest(ids, used, form, cfg, generator, warn=warn),
                                 lines.line if lines else None)
            if lines is not None:
                lines.end()
                continue
            songs = [cut(song, used, form.chars, copies) for song in songs]
        else:
            if stream is not None:
                lines = LineStream(stream, marker, used)
            on_step = (lambda ids: lines.write(vocab.chars[int(ids[0])])) if stream else None
            drawn = generate(model, ids, cfg, generator, on_step, keep=stream is None,
                             counts=counts, guard=copies)
            if stream is not None:
                lines.end()
                continue
            songs = [[line_of(line, copies) for line in (used + vocab.decode(s)).split("\n")]
                     for s in drawn]
        results += [result(prefix, used, k, song, used_settings) for k, song in enumerate(songs)]
    return results


def seeded(cfg: SampleConfig, device: torch.device | str = "cpu") -> torch.Generator:
    """A random stream of the request's own: `cfg.seed`'s, or a fresh seed that --seed takes
    (torch's own fresh seeds reach 2**64, past what --seed accepts)."""
    seed = cfg.seed if cfg.seed is not None else secrets.randbelow(2**63)
    return torch.Generator(device).manual_seed(seed)


def settings_used(cfg: SampleConfig, gen: torch.Generator, path: Path, backend: str) -> dict:
    """The settings a result reports: `cfg` with the seed `gen` drew from and the penalty in
    force, and what ran it."""
    return {**asdict(cfg), "repetition_penalty": cfg.penalty(), "seed": gen.initial_seed(),
            "checkpoint": str(path), "backend": backend}


def check_starts(form: Form | None, starts: list[str]) -> None:
    """Prefixes (as used) that the form leaves room for."""
    if form is not None and form.acrostic is not None and any(starts):
        raise UsageError("--acrostic sets how every line starts; drop --prefix")
    if form and form.chars is None and any(u.count("\n") + bool(u.split("\n")[-1]) > form.lines
                                           for u in starts):
        raise UsageError(f"--prefix holds more lines than the song's {form.lines} (--lines)")


def result(prefix: str, used: str, k: int, song: list[Line], settings: dict) -> dict[str, Any]:
    """One text of `sample --json`: the prefix, the text after it, its lines, the settings."""
    return {"prefix": prefix, "prefix_used": used, "sample": k,
            "text": "\n".join(line.text for line in song)[len(used):],
            "lines": [line.to_dict() for line in song], "settings": settings}


def check_sampling_memory(m: ModelConfig, vocab_size: int, cfg: SampleConfig, keeps_text: bool,
                 device: torch.device) -> None:
    """Refuse settings whose sampling would not fit in memory, before drawing. Roughly, in
    bytes, for N = num_samples x candidates streams (V vocabulary, H hidden, L layers): per
    stream the stepper's buffers, about L 12 H float32 values, and each step's logits with
    their softmax, float64 cumulative sum and masks, about 40 V bytes; free text that is kept
    (not streamed) adds 8 bytes per character per stream."""
    streams = cfg.num_samples * cfg.candidates
    per_text = 8 * cfg.length if keeps_text else 0
    need = streams * (4 * 12 * m.num_layers * m.hidden_size + 40 * vocab_size + per_text)
    key = "length" if per_text > 40 * vocab_size else "num_samples"
    option = option_name(key)
    require(need, device, lambda have: (
        f"{option} {getattr(cfg, key)}: sampling would need about {human_bytes(need)} of "
        f"memory, but {human_bytes(have)} is free; lower {option}"
        + (" or --candidates" if cfg.candidates > 1 else "")))


def start(vocab: Vocab, prefix: str, unknown: UnknownPolicy, generator: torch.Generator,
          warn: Callable[[str], None]) -> tuple[list[int], str]:
    """The ids a prefix warms the model up on, and the text they stand for (sampler.start_ids),
    with the prefix's problems as usage errors."""
    try:
        prefix.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in argv arrive as lone surrogates
        raise UsageError(f"--prefix {prefix!r} is not valid UTF-8 text") from None
    try:
        ids, used = start_ids(vocab, prefix, unknown, generator)
    except UnknownCharsError as e:
        raise UsageError(f"prefix {prefix!r}: {e}; use --unknown skip to drop them") from None
    if unknown == "skip" and vocab.unknown(prefix):
        warn(f"prefix {prefix!r}: skipped characters not in the vocabulary: "
             + ", ".join(map(repr, vocab.unknown(prefix))))
    return ids, used


def song_form(cfg: SampleConfig) -> Form | None:
    """The form `cfg` asks for; None for free text."""
    if cfg.lines is None and cfg.acrostic is None:
        given = [name for name, value in (("--line-length", cfg.line_length),
                                          ("--rhyme", cfg.rhyme),
                                          ("--rhyme-with", cfg.rhyme_with),
                                          ("--keywords", cfg.keywords)) if value]
        if given:
            raise UsageError(f"{', '.join(given)} shape the lines of a song: give --lines N "
                             "(or --acrostic) too")
        return None
    return make_form(cfg.lines, cfg.line_length, cfg.rhyme, cfg.rhyme_with, cfg.acrostic,
                     cfg.keywords)


def copy_index(saved: checkpoint.Checkpoint, cfg: SampleConfig,
               warn: Callable[[str], None]) -> CopyIndex | None:
    """The corpus of `saved`, guarded against the runs `cfg.max_copy` asks (by default
    DEFAULT_RUN); None for a checkpoint without its corpus (an older lyricgen wrote it)."""
    n = DEFAULT_RUN if cfg.max_copy is None else cfg.max_copy
    if saved.corpus_ids is not None:
        return CopyIndex(saved.corpus_ids, saved.vocab, n)
    if n:
        if cfg.max_copy is not None:
            raise UsageError(f"{saved.source} does not hold its corpus (an older lyricgen wrote "
                             "it), which --max-copy needs; train it again")
        warn(f"{saved.source} does not hold its corpus (an older lyricgen wrote it): copies of "
             "it are not prevented; train it again for the copy guard")
    return None


def cut(song: list[Line], prefix: str, chars: int | None, copies: CopyIndex | None
        ) -> list[Line]:
    """The lines of `song` up to `chars` characters after `prefix` (None: all of them); a line
    cut short loses its score, which was the whole line's."""
    if chars is None:
        return song
    text = "\n".join(line.text for line in song)[:len(prefix) + chars]
    kept = text.split("\n")
    return song[:len(kept) - 1] + [song[len(kept) - 1] if kept[-1] == song[len(kept) - 1].text
                                   else line_of(kept[-1], copies)]
