"""Songs in a form against plain sampling: rhyme, form adherence, copied lines, fluency and
diversity, and the time to write a song; on the default preset trained on the Jay Chou corpus.

    python benchmarks/lyrics.py [--corpus ZIP] [--minutes 10] [--songs 50] [--checkpoint PT]

Without --checkpoint it first trains the default preset for --minutes into benchmarks/out/.
Fluency is the perplexity of the generated text under an interpolated (Witten-Bell) character
trigram model of the corpus's training part, written here independently of lyricgen's model;
diversity is distinct-2, distinct character bigrams / all bigrams, over all samples of a setting
pooled (how the issue counts it) and per sample (within-song repetition). Songs have 32 lines,
about 300 characters, and plain samples are as long as the mean song, so that both compare.
Plain sampling is measured twice: as `sample` draws by default (the LSTM mixed with the
training text's counts) and from the LSTM alone (as it drew before the counts). A setting lies
beyond the plain frontier when its fluency is below both plain samplers' at its diversity
(each log-linear between its two nearest points). The issue's strict reading, as fluent as
plain T 0.7 at the diversity of plain top-p 0.9, is checked for the STRICT settings seed by
seed.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import torch

from common import DEFAULT_CORPUS, ROOT, record
from lyricgen import checkpoint, fingerprint, rhyme
from lyricgen.config import DataConfig, SampleConfig
from lyricgen.corpus import normalise, read_text, resolve_data
from lyricgen.form import check_vocab, make_form
from lyricgen.sampler import generate, start_ids
from lyricgen.songwriter import write_songs

SONG = dict(lines=32, line_length="7-9", rhyme="AABB")
SETTINGS = {  # name: sample settings (with `lines`: a song; without: plain text)
    "song AABB 7-9, 1 candidate": SampleConfig(**SONG),
    "song AABB 7-9, 16 candidates": SampleConfig(**SONG, candidates=16),
    "song AABB 7-9, 16 candidates, T 1.1": SampleConfig(**SONG, candidates=16, temperature=1.1),
    "song AABB 7-9, 32 candidates, T 1.1": SampleConfig(**SONG, candidates=32, temperature=1.1),
    "song AABB 7-9, 16 candidates, T 0.9": SampleConfig(**SONG, candidates=16, temperature=0.9),
    "song AABB 7-9, 16 candidates, T 0.8": SampleConfig(**SONG, candidates=16, temperature=0.8),
    "song AABB 7-9, 16 candidates, T 0.8, no copy": SampleConfig(**SONG, candidates=16,
                                                                 temperature=0.8, no_copy=True),
    "song AABB 7-9, 16 candidates, T 0.8, penalty 1.2": SampleConfig(
        **SONG, candidates=16, temperature=0.8, repetition_penalty=1.2),
    "song AABB 7-9, 16 candidates, T 0.85, line start T 5": SampleConfig(
        **SONG, candidates=16, temperature=0.85, start_temperature=5.0),
    "song AABB 7-9, 16 candidates, T 0.85, line start T 8": SampleConfig(
        **SONG, candidates=16, temperature=0.85, start_temperature=8.0),
    "song AABB 7-9, 16 candidates, T 0.85, line start T 8, rarity 0.5": SampleConfig(
        **SONG, candidates=16, temperature=0.85, start_temperature=8.0, rarity=0.5),
    "song 7-9 unrhymed, 16 candidates, T 0.88, line start T 8": SampleConfig(
        **{**SONG, "rhyme": None}, candidates=16, temperature=0.88, start_temperature=8.0),
    "song 7-9 unrhymed, 16 candidates, T 0.82, line start T 8, rarity 1": SampleConfig(
        **{**SONG, "rhyme": None}, candidates=16, temperature=0.82, start_temperature=8.0,
        rarity=1.0),
    "song 7-9 unrhymed, 16 candidates, T 0.92, line start T 8, rarity 1": SampleConfig(
        **{**SONG, "rhyme": None}, candidates=16, temperature=0.92, start_temperature=8.0,
        rarity=1.0),
    "song XAXA 5-9, 8 candidates": SampleConfig(lines=32, line_length="5-9", rhyme="XAXA",
                                                candidates=8),
    "acrostic 8, 7 chars, AABB, 8 candidates": SampleConfig(acrostic="分开不难我爱你的",
                                                            line_length="7", rhyme="AABB",
                                                            candidates=8),
}
# The strict reading: as fluent as plain T 0.7, as varied as plain top-p 0.9; checked
# for these settings over several seeds (`strict_reading`)
STRICT = ("song 7-9 unrhymed, 16 candidates, T 0.82, line start T 8, rarity 1",
          "song 7-9 unrhymed, 16 candidates, T 0.92, line start T 8, rarity 1")
STRICT_SEEDS = (1, 3, 4, 5)
TEMPERATURES, TOP_PS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5), (0.95, 0.9, 0.8)
PLAIN = {f"plain T {t}": SampleConfig(temperature=t) for t in TEMPERATURES}
PLAIN |= {f"plain top-p {p}": SampleConfig(top_p=p) for p in TOP_PS}
# The sampler as it was before the counts: the LSTM alone (its own frontier)
PLAIN |= {f"plain LSTM alone T {t}": SampleConfig(temperature=t, counts=False)
          for t in TEMPERATURES}
PLAIN |= {f"plain LSTM alone top-p {p}": SampleConfig(top_p=p, counts=False) for p in TOP_PS}


class Trigram:
    """Interpolated Witten-Bell character trigram model."""

    def __init__(self, text: str):
        self.vocab = len(set(text)) + 1  # + one unknown character
        self.total = len(text)
        self.counts = [Counter(text[i - n:i + 1] for i in range(n, len(text))) for n in range(3)]
        # N1+(h .): distinct followers of each history h, and how often h occurs
        self.followers = [Counter(k[:-1] for k in c) for c in self.counts]
        self.history = [Counter(text[i - n:i] for i in range(n, len(text))) for n in range(3)]

    def prob(self, history: str, c: str) -> float:
        p = (self.counts[0][c] + 1) / (self.total + self.vocab)  # add-one unigram
        for n in (1, 2):
            h = history[-n:]
            seen, kinds = self.history[n][h], self.followers[n][h]
            if len(h) == n and seen:
                p = (self.counts[n][h + c] + kinds * p) / (seen + kinds)
        return p

    def perplexity(self, texts: list[str]) -> float:
        logp, n = 0.0, 0
        for text in texts:
            for i in range(1, len(text)):
                logp += math.log(self.prob(text[max(0, i - 2):i], text[i]))
                n += 1
        return math.exp(-logp / max(n, 1))


def distinct2(texts: list[str]) -> float:
    """Over all texts pooled."""
    bigrams = [b for t in texts for b in zip(t, t[1:])]
    return len(set(bigrams)) / max(len(bigrams), 1)


def distinct2_each(texts: list[str]) -> float:
    """Per text, averaged."""
    return statistics.mean(distinct2([t]) for t in texts)


def beyond(point: tuple[float, float], curves: list[list[tuple[float, float]]]) -> str:
    """Whether (diversity, fluency) lies below every plain sampler's frontier (each curve
    log-linear between its points); the lowest frontier's fluency there."""
    d, f = point
    edges = []
    for curve in curves:
        curve = sorted(curve)
        for (d0, f0), (d1, f1) in zip(curve, curve[1:]):
            if d0 <= d <= d1:
                edges.append(math.exp(math.log(f0) + (d - d0) / (d1 - d0)
                                      * (math.log(f1) - math.log(f0))))
                break
    if not edges:
        return "-"
    edge = min(edges)
    return f"{'yes' if f < edge else 'no'} ({edge:.0f})"


def trained_checkpoint(args) -> Path:
    if args.checkpoint:
        return args.checkpoint
    out = ROOT / "benchmarks" / "out" / "lyrics"
    subprocess.run([sys.executable, "-m", "lyricgen", "train", "--data", str(args.corpus),
                    "--time-limit", str(args.minutes), "--out", str(out), "--overwrite"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out / "best.pt"


def measure(name: str, cfg: SampleConfig, songs: int, model, vocab, hashes, train_lines,
            length: int, seed: int, counts) -> dict:
    """Write `songs` samples with `cfg`, ten per batch; their figures."""
    texts, seconds = [], []
    generator = torch.Generator().manual_seed(seed)
    form = make_form(cfg.lines, cfg.line_length, cfg.rhyme, cfg.rhyme_with, cfg.acrostic) \
        if cfg.lines or cfg.acrostic else None
    if form is not None:
        check_vocab(form, vocab)
    ids, _ = start_ids(vocab, "", "error", generator)
    counts = counts if cfg.counts else None
    for start in range(0, songs, 10):
        batch = replace(cfg, num_samples=min(10, songs - start), length=length)
        began = time.perf_counter()
        if form is None:
            out = [vocab.decode(s) for s in generate(model, ids, batch, generator,
                                                     counts=counts)]
        else:
            out = ["\n".join(x.text for x in song)
                   for song in write_songs(model, vocab, ids, "", form, batch, generator, hashes,
                                           counts)]
        seconds.append((time.perf_counter() - began) / batch.num_samples)
        texts += out
    lines = [[x for x in t.split("\n") if x.strip()] for t in texts]
    scheme = cfg.rhyme or "A"  # plain text: adjacent lines, as the issue counts them
    pairs = hits = 0
    for song in lines:
        keys = [rhyme.line_key(x) for x in song]
        for i in range(1, len(song)):
            earlier = [j for j in range(i) if scheme[j % len(scheme)] == scheme[i % len(scheme)]]
            if scheme[i % len(scheme)] == "X" or not earlier:
                continue
            j = earlier[0] if form is not None else i - 1
            pairs += 1
            hits += keys[i] is not None and keys[i] == keys[j]
    counted = [x for song in lines for x in song]
    copied = [x for x in counted if fingerprint.significant(x) and x.strip() in train_lines]
    result = {"name": name, "rhyme": hits / max(pairs, 1), "copied": len(copied) / len(counted),
              "texts": texts, "seconds": statistics.median(seconds)}
    if form is not None:
        result["count ok"] = statistics.mean(len(s) == form.lines for s in lines)
        result["length ok"] = statistics.mean(
            form.length(i)[0] <= sum(not c.isspace() for c in x) <= form.length(i)[1]
            for s in lines for i, x in enumerate(s))
        if form.acrostic:
            result["acrostic ok"] = statistics.mean(
                all(x[0] == a for x, a in zip(s, form.acrostic)) for s in lines)
    return result


def strict_reading(measure_one, trigram: Trigram, setting: str) -> list[str]:
    """`setting` against plain T 0.7's fluency and plain top-p 0.9's pooled diversity, both
    plain samplers (the LSTM alone, and with the counts), drawn with the same seed, per seed,
    their samples as long as the setting's mean song (distinct-2 falls as texts grow)."""
    plain = ["plain LSTM alone T 0.7", "plain LSTM alone top-p 0.9", "plain T 0.7",
             "plain top-p 0.9"]
    lines = [f"The strict reading for \"{setting}\", seed by seed (fluency / distinct-2 "
             f"pooled; plain samples as long as the setting's songs):", "",
             "| seed | the setting | " + " | ".join(plain)
             + " | met against the LSTM alone / with the counts |", "|---" * 7 + "|"]
    for seed in STRICT_SEEDS:
        song = measure_one(setting, SETTINGS[setting], seed, 0)
        length = round(statistics.mean(len(t) for t in song["texts"]))
        figures = [(trigram.perplexity(r["texts"]), distinct2(r["texts"])) for r in
                   [song] + [measure_one(name, PLAIN[name], seed, length) for name in plain]]
        (f, d), met = figures[0], []
        for (t07, _), (_, top_p) in (figures[1:3], figures[3:5]):
            met.append("yes" if f <= t07 and d >= top_p else "no")
        lines.append(f"| {seed} | " + " | ".join(f"{f:.1f} / {d:.3f}" for f, d in figures)
                     + f" | {' / '.join(met)} |")
    return lines


def song_speed(model, vocab, hashes, counts, repeats: int = 10) -> list[float]:
    """Seconds to write one 16-line song with 16 candidates, model loaded."""
    cfg = SampleConfig(**{**SONG, "lines": 16}, candidates=16, no_copy=True)
    form = make_form(cfg.lines, cfg.line_length, cfg.rhyme, None, None)
    generator = torch.Generator().manual_seed(0)
    ids, _ = start_ids(vocab, "", "error", generator)
    times = []
    for _ in range(repeats + 1):
        began = time.perf_counter()
        write_songs(model, vocab, ids, "", form, cfg, generator, hashes, counts)
        times.append(time.perf_counter() - began)
    return times[1:]  # the first pays for warm-up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--songs", type=int, default=50)
    parser.add_argument("--checkpoint", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    saved = checkpoint.load(trained_checkpoint(args), training_state=True)
    model, vocab, counts = saved.build_model(), saved.vocab, saved.count_model()
    data = DataConfig(data=str(args.corpus))
    text = normalise(read_text(resolve_data(data.data)), data)
    train_text = text[: len(text) - int(len(text) * data.val_fraction)]
    trigram = Trigram(train_text)
    train_lines = {x.strip() for x in text.split("\n")}

    results = [measure(n, c, args.songs, model, vocab, saved.line_hashes, train_lines, 0, 1,
                       counts) for n, c in SETTINGS.items()]
    length = round(statistics.mean(len(t) for r in results for t in r["texts"]))
    results += [measure(n, c, args.songs, model, vocab, saved.line_hashes, train_lines, length,
                        2, counts) for n, c in PLAIN.items()]
    lines = [f"{args.songs} samples per setting from {saved.source} (best val ppl "
             f"{min(r['val_ppl'] for r in saved.history):.1f} after {len(saved.history)} "
             f"epochs); plain samples of "
             f"{length} characters, the mean song's length.", "",
             "| setting | rhyme | lines / lengths / acrostic ok | copied | fluency (trigram "
             "ppl, lower reads better) | distinct-2 pooled (per sample) | beyond plain: pooled "
             "(plain's fluency there) / per sample | s per sample |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        r["fluency"] = trigram.perplexity(r["texts"])
        r["pooled"], r["each"] = distinct2(r["texts"]), distinct2_each(r["texts"])
    plain = [r for r in results if r["name"].startswith("plain")]
    curves = [[r for r in plain if ("LSTM alone" in r["name"]) == alone] for alone in (0, 1)]
    for r in results:
        ok = " / ".join(f"{r[k]:.0%}" for k in ("count ok", "length ok", "acrostic ok") if k in r)
        versus = "-" if r in plain else " / ".join(
            beyond((r[kind], r["fluency"]), [[(p[kind], p["fluency"]) for p in curve]
                                             for curve in curves]) for kind in ("pooled", "each"))
        lines.append(f"| {r['name']} | {r['rhyme']:.0%} | {ok or '-'} | {r['copied']:.1%} | "
                     f"{r['fluency']:.1f} | {r['pooled']:.2f} ({r['each']:.2f}) | {versus} | "
                     f"{r['seconds']:.2f} |")
    for setting in STRICT:
        lines += [""] + strict_reading(
            lambda name, cfg, seed, chars: measure(name, cfg, args.songs, model, vocab,
                                                   saved.line_hashes, train_lines, chars, seed,
                                                   counts),
            trigram, setting)
    times = song_speed(model, vocab, saved.line_hashes, counts)
    lines += ["", f"A 16-line song (AABB, 7-9 characters, 16 candidates, no copy), model "
                  f"loaded: median **{statistics.median(times):.2f} s** over {len(times)} "
                  f"(range {min(times):.2f}-{max(times):.2f})"]
    plot(results, trigram, ROOT / "benchmarks" / "out" / "lyrics_frontier.png")
    samples = ROOT / "benchmarks" / "out" / "lyrics_samples.json"
    samples.write_text(json.dumps({r["name"]: r["texts"] for r in results}, ensure_ascii=False))
    record("Songs in a form (lyrics.py)", "python benchmarks/lyrics.py "
           + " ".join(sys.argv[1:]), lines)


def plot(results: list[dict], trigram: Trigram, path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    kinds = (("plain LSTM alone", "x"), ("plain", "o"), ("song", "s"), ("acrostic", "^"))
    for kind, marker in kinds:
        rs = [r for r in results if r["name"].startswith(kind)
              and (kind != "plain" or "LSTM alone" not in r["name"])]
        xs = [r["pooled"] for r in rs]
        ys = [r["fluency"] for r in rs]
        ax.plot(xs, ys, marker, label=kind,
                linestyle="-" if kind.startswith("plain") else "none")
        for r, x, y in zip(rs, xs, ys):
            ax.annotate(r["name"].replace("song AABB 7-9, ", ""), (x, y), fontsize=6)
    ax.set(xlabel="distinct-2, pooled (higher: more varied)",
           ylabel="trigram perplexity (lower: reads like the corpus)", yscale="log",
           title="plain sampling's frontier and the song forms")
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
