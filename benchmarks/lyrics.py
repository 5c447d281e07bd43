"""Songs worth keeping: lyricgen's settings judged by benchmarks/judge.py, which knows nothing of
lyricgen: copied lines, lines made of words, good lines, distinct-2 and rhyme, against the
corpus's own held-out lines as the yardstick; on the default preset trained on the Jay Chou
corpus; and the time to write a 16-line song.

    python benchmarks/lyrics.py [--corpus ZIP] [--minutes 10] [--songs 50] [--seeds 1,2,3]
                                [--checkpoint PT] [--only NAME...]

Without --checkpoint it first trains the default preset for --minutes into benchmarks/out/.
The judge's training text is the corpus's first 90% as published (what the model learned, and
what it must not copy), its held-out lines the last 10%. Free text is drawn 200 characters at
a time after the prefix 分开; songs have 8 lines. Every figure is the mean over the seeds, with
the lowest and highest seed's beside it where they differ by more than 0.02.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import torch

from common import DEFAULT_CORPUS, ROOT, record
from judge import Judge
from lyricgen import checkpoint
from lyricgen.config import SampleConfig
from lyricgen.copies import DEFAULT_RUN, CopyIndex
from lyricgen.songs.form import check_vocab, free_form, make_form
from lyricgen.sampler import generate, start_ids
from lyricgen.songs.songwriter import Songwriter, SongRequest

FREE = dict(length=200)
SONG = dict(lines=8, line_length="7-9", rhyme="AABB")
# the defaults before issue 25: a character at a time, no ranking, no penalty
OLD = dict(temperature=1.0, candidates=1, words=0.0, ending=0.0, repetition_penalty=1.0)
RANKED = dict(candidates=24, words=6.0, ending=1.5)  # song.toml's ranking
SETTINGS = {  # name: sample settings (with `lines`: a song; without: free text after 分开)
    "free, a character at a time, T 1, copies allowed (the old default)": SampleConfig(
        **FREE, **OLD, max_copy=0),
    "free, a character at a time, T 0.8, copies allowed": SampleConfig(
        **FREE, **{**OLD, "temperature": 0.8}, max_copy=0),
    "free, a character at a time, T 0.7": SampleConfig(**FREE, **{**OLD, "temperature": 0.7}),
    "free T 0.85, 8 candidates, words 4, ending 1, no repetition penalty": SampleConfig(
        **FREE, repetition_penalty=1.0),
    "free T 0.85, 8 candidates, words 4, ending 1, repetition penalty 1.2": SampleConfig(
        **FREE, repetition_penalty=1.2),
    "free, the default (T 0.85, 8 candidates, words 4, ending 1, repetition penalty 1.5)":
        SampleConfig(**FREE),
    "free T 1 (the default's ranking)": SampleConfig(**FREE, temperature=1.0),
    "free 16 candidates (the default's ranking)": SampleConfig(**FREE, candidates=16),
    "free LSTM alone (the default's ranking)": SampleConfig(**FREE, counts=False),
    "song.toml as it was (T 0.85, line start T 8, 16 candidates), copies allowed":
        SampleConfig(**SONG, **{**OLD, "candidates": 16, "temperature": 0.85},
                     start_temperature=8.0, max_copy=0),
    "song T 0.85, 16 candidates, no ranking but the model's": SampleConfig(
        **SONG, **{**OLD, "candidates": 16, "temperature": 0.85}),
    "song T 0.85, 16 candidates, words 4, ending 1, no repetition penalty": SampleConfig(
        **SONG, candidates=16, repetition_penalty=1.0),
    "song T 0.85, 24 candidates, words 6, ending 1.5, no repetition penalty": SampleConfig(
        **SONG, **RANKED, repetition_penalty=1.0),
    "song.toml (T 0.85, 24 candidates, words 6, ending 1.5, repetition penalty 1.5)":
        SampleConfig(**SONG, **RANKED),
    "song.toml with 32 candidates": SampleConfig(**SONG, **{**RANKED, "candidates": 32}),
    "song.toml with line start T 8": SampleConfig(**SONG, **RANKED, start_temperature=8.0),
    "song.toml, LSTM alone": SampleConfig(**SONG, **RANKED, counts=False),
}
PRESET = "song.toml (T 0.85, 24 candidates, words 6, ending 1.5, repetition penalty 1.5)"
SHOWN = (PRESET, "free, the default (T 0.85, 8 candidates, words 4, ending 1, repetition "
                 "penalty 1.5)")


def corpus_parts(path: Path) -> tuple[str, str]:
    """The corpus as published, cut as lyricgen holds out its last 10%."""
    with zipfile.ZipFile(path) as z:
        text = "".join(z.read(n).decode("utf-8") for n in sorted(z.namelist())
                       if n.endswith(".txt"))
    cut = len(text) - int(len(text) * 0.1)
    return text[:cut], text[cut:]


def trained_checkpoint(args) -> Path:
    if args.checkpoint:
        return args.checkpoint
    out = ROOT / "benchmarks" / "out" / "lyrics"
    subprocess.run([sys.executable, "-m", "lyricgen", "train", "--data", str(args.corpus),
                    "--time-limit", str(args.minutes), "--out", str(out), "--overwrite"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out / "best.pt"


def write(saved, cfg: SampleConfig, count: int, seed: int) -> tuple[list[str], float]:
    """`count` texts written with `cfg`, ten at a time; and the seconds per text."""
    model, vocab = saved.build_model(), saved.vocab
    counts = saved.count_model() if cfg.counts else None
    copies = CopyIndex(saved.corpus_ids, vocab, DEFAULT_RUN if cfg.max_copy is None
                       else cfg.max_copy)
    generator = torch.Generator().manual_seed(seed)
    song = cfg.lines is not None  # else free text, a line at a time with candidates (as `sample`)
    form = make_form(cfg.lines, cfg.line_length, cfg.rhyme, None, None) if song else \
        free_form(cfg.length) if cfg.candidates > 1 else None
    if form is not None:
        check_vocab(form, vocab)
    ids, used = start_ids(vocab, "" if song else "分开", "error", generator)
    texts, began = [], time.perf_counter()
    for first in range(0, count, 10):
        batch = replace(cfg, num_samples=min(10, count - first))
        if form is None:
            texts += [used + vocab.decode(s) for s in generate(model, ids, batch, generator,
                                                                counts=counts, guard=copies)]
        else:
            texts += ["\n".join(x.text for x in s)[:len(used) + (form.chars or 10**9)]
                      for s in Songwriter(model, vocab, copies, counts).write(
                          SongRequest(ids, used, form, batch, generator))]
    return texts, (time.perf_counter() - began) / count


def song_speed(saved, repeats: int = 10) -> list[float]:
    """Seconds to write one 16-line song with the song preset's settings, model loaded."""
    cfg = replace(SETTINGS[PRESET], lines=16)
    times = []
    for _ in range(repeats + 1):
        times.append(write(saved, cfg, 1, len(times))[1])
    return times[1:]  # the first pays for warm-up (the dictionary's loading among it)


KEYS = ("good", "words", "ends", "copied6", "copied8", "distinct2", "rhyme")


def cell(values: list[float]) -> str:
    mean = statistics.mean(values)
    spread = max(values) - min(values)
    return f"{mean:.2f}" + (f" ({min(values):.2f}-{max(values):.2f})" if spread > 0.02 else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--songs", type=int, default=50)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--only", nargs="*", help="measure only these settings")
    args = parser.parse_args()
    torch.set_num_threads(2)
    seeds = [int(s) for s in args.seeds.split(",")]
    saved = checkpoint.load(trained_checkpoint(args), training_state=True)
    train, heldout = corpus_parts(args.corpus)
    judge = Judge(train, heldout)
    history = saved.history[-1]
    lines = [f"{args.songs} texts per setting and seed (seeds {args.seeds}), from {saved.source} "
             f"(epoch {len(saved.history)}: val ppl plain {history.get('val_ppl_plain', 0):.1f}"
             f", LSTM alone {history.get('val_ppl_lstm', 0):.1f}); judged by benchmarks/"
             f"judge.py: good lines have no run of 6 of the training text and words >= "
             f"{judge.floor:.2f}, the held-out lines' lower quartile.", "",
             "| setting | good | words | ends in a word | copied (6+) | copied (8+) | distinct-2 "
             "| rhyme | s per text |", "|---|---|---|---|---|---|---|---|---|"]
    real = judge.figures(["\n".join(judge.heldout)])
    lines.append("| real held-out lines (the yardstick) | " + " | ".join(
        f"{real[k]:.2f}" for k in KEYS) + " | - |")
    shown = []
    for name, cfg in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        figures, seconds = [], []
        for seed in seeds:
            texts, s = write(saved, cfg, args.songs, seed)
            figures.append(judge.figures(texts, cfg.rhyme))
            seconds.append(s)
            if name in SHOWN and seed == seeds[0]:
                shown.append((name, seed, texts[:3]))
        lines.append(f"| {name} | " + " | ".join(cell([f[k] for f in figures]) for k in KEYS)
                     + f" | {statistics.mean(seconds):.2f} |")
        print(lines[-1], flush=True)
    if not args.only or "speed" in args.only:
        times = song_speed(saved)
        lines += ["", f"A 16-line song with the song preset's settings, model loaded: median "
                      f"**{statistics.median(times):.2f} s** over {len(times)} (range "
                      f"{min(times):.2f}-{max(times):.2f})"]
    if shown:  # folded on the page of current figures (RESULTS.md), which they would fill
        lines += ["", "<details><summary>Texts as they came out</summary>"]
    for name, seed, texts in shown:
        lines += ["", f"The first three texts of \"{name}\", seed {seed}, as they came out "
                      "(good lines marked +):", ""]
        for text in texts:
            lines += ["```"] + [("+ " if judge.good(x) else "  ") + x
                                for x in text.split("\n") if x.strip()] + ["```"]
    if shown:
        lines += ["", "</details>"]
    record("Songs worth keeping (lyrics.py)", "python benchmarks/lyrics.py "
           + " ".join(sys.argv[1:]), lines)


if __name__ == "__main__":
    main()
