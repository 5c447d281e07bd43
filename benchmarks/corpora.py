"""The default on corpora of several sizes, each a `lyricgen train --time-limit M` as a user runs
it (no preset: it sizes itself), and the default model's training FLOP efficiency:

- test texts whose best possible held-out perplexity is known exactly, of several kinds
  (texts.py: hidden Markov sources, chains, a pool of lines, refrains, a 6,000-character
  vocabulary; 50,000 to 2,000,000 characters): goal within 25% of the limit on each;
- the Jay Chou lyrics (the best.pt is kept in benchmarks/out/corpora/jaychou for lyrics.py);
- with --general, Debian's fortunes-zh text (`apt-get download fortunes-zh`, `dpkg-deb -x`,
  usr/share/games/fortunes/chinese; cleaned as finetune.py does; never committed), against
  the plain 2 x 512 nn.LSTM of quality.py in the same time.

    python benchmarks/corpora.py [--minutes 10] [--general TEXT] [--only hmm,pool,jaychou,...]

Validation's cost: its median time (`val_seconds`, the cache and the counts included) over the
median epoch's training time (goal: at most a fifth).

FLOP efficiency: the model's multiply-adds per character (embedding-fed LSTM and output
layer; forward and backward count 3x the forward's 2 FLOP per multiply-add) times its median
training tokens/s, over the rate of a 2048 x 2048 float32 matmul measured in the same run;
where training multiplied in bfloat16 (`--matmul auto` on a CPU with AMX), also over that
matmul's rate with bfloat16 products.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from common import DEFAULT_CORPUS, ROOT, median_speed, record
from finetune import clean
from quality import BASELINE
import texts

from lyricgen.training import precision

OUT = ROOT / "benchmarks" / "out" / "corpora"


def train(name: str, args: list[str], minutes: float) -> tuple[list[dict], str, bool]:
    """`lyricgen train ARGS --time-limit minutes` into OUT/name: its metrics rows, its sizing
    line (or '-'), and whether it multiplied in bfloat16."""
    out = OUT / name
    done = subprocess.run([sys.executable, "-m", "lyricgen", "train", *args, "--time-limit",
                           str(minutes), "--out", str(out), "--overwrite", "--preview-every",
                           "0"], check=True, capture_output=True, text=True)
    sizing = next((line for line in done.stdout.splitlines() if line.startswith("sized")), "-")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return rows, sizing, "multiplies matrices in bfloat16" in done.stdout


def best(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return min(values) if values else None


def matmul_rate(bfloat16: bool = False, size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a large float32 matmul here (the best of `repeats`), with bfloat16 products
    as training takes them with `bfloat16`."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    times = []
    with precision.bfloat16_matmuls() if bfloat16 else nullcontext():
        a @ b
        for _ in range(repeats):
            began = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - began)
    return 2 * size ** 3 / min(times)


def matmul_rates() -> dict[bool, float]:
    """{bfloat16: FLOP/s}, float32 (False) always and bfloat16 (True) where this torch has it."""
    return {b: matmul_rate(b) for b in (False, True) if not b or precision.supported()}


def flops_per_char(vocab: int, hidden: int = 512, embedding: int = 512) -> float:
    """Training FLOP per character of the default model (one layer, tied output layer)."""
    macs = 4 * hidden * (embedding + hidden) + hidden * vocab
    return 3 * 2 * macs


def vocab_size(path: Path) -> int:
    from lyricgen.config import DataConfig
    from lyricgen.data.corpus import load_corpus
    return len(load_corpus(DataConfig(data=str(path)), progress=False).vocab)


def validation_share(rows: list[dict]) -> str:
    """Median validation time against the median epoch's training time (whole epochs')."""
    epochs = [r["seconds"] for r in rows if float(r["epoch"]).is_integer()] or [math.nan]
    validation = [r["val_seconds"] for r in rows if "val_seconds" in r]
    if not validation:
        return "-"
    v, e = statistics.median(validation), statistics.median(epochs)
    return f"{v:.1f} / {e:.1f} = **{v / e:.2f}**"


def strengths(rows: list[dict]) -> str:
    """The regularisation's strength at the first epoch and the last (raised as it trained)."""
    first, last = rows[0].get("strength"), rows[-1].get("strength")
    return "-" if first is None else f"{first:.2f}, {last:.2f}"


def fmt(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--general", type=Path)
    parser.add_argument("--only", default=",".join([*texts.SOURCES, "jaychou", "general",
                                                    "baseline"]))
    args = parser.parse_args()
    only = args.only.split(",")
    torch.set_num_threads(2)
    lines = ["| corpus | run | epochs | best val ppl: model (LSTM + counts) | LSTM alone | "
             "with the cache | goal | last train ppl | strength: start, end | "
             "validation / epoch (s) | sizing |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    efficiency = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for name in (n for n in only if n in texts.SOURCES):  # in the order given
            body, limit = texts.text(name)
            path = Path(tmp) / f"{name}.txt"
            path.write_text(body, encoding="utf-8")
            runs.append((name, f"{name} ({len(body) // 1000:,}k, {len(set(body)):,} characters, "
                         f"limit {limit:.3f})", "default", path, [],
                         lambda ppl, cache, lim=limit: f"within 25% of {lim:.2f}: plain "
                         f"{ppl / lim - 1:+.1%}, with the cache {cache / lim - 1:+.1%}"))
        if "jaychou" in only:
            runs.append(("jaychou", "Jay Chou", "default", args.corpus, [],
                         lambda ppl, cache: f"plain <= 250: {'met' if ppl <= 250 else 'not met'}"))
        if args.general is not None:
            general = Path(tmp) / "general.txt"
            clean(args.general, general)
            if "general" in only:
                runs.append(("fortunes", "fortunes-zh", "default", general, [],
                             lambda ppl, cache: "-"))
            if "baseline" in only:
                runs.append(("fortunes_baseline", "fortunes-zh", "plain 2 x 512 nn.LSTM", general,
                             [*BASELINE, "--ngram-order", "0"], lambda ppl, cache: "-"))
        for name, corpus, run, path, extra, goal in runs:
            before = matmul_rates()
            rows, sizing, bfloat16 = train(name, ["--data", str(path), *extra], args.minutes)
            rates = {b: max(r, before[b]) for b, r in matmul_rates().items()}
            plain = best(rows, "val_ppl_plain") or best(rows, "val_ppl")
            lstm = best(rows, "val_ppl_lstm")
            cache = best(rows, "val_ppl") if "val_ppl_plain" in rows[0] else None
            lines.append(f"| {corpus} | {run} | {rows[-1]['epoch']:g} | **{fmt(plain)}** | "
                         f"{fmt(lstm)} | {fmt(cache)} | {goal(plain, cache or plain)} | "
                         f"{fmt(rows[-1]['train_ppl'])} | {strengths(rows)} | "
                         f"{validation_share(rows)} | {sizing} |")
            if run == "default":
                speed = median_speed(rows)
                flops = speed * flops_per_char(vocab_size(path))
                against = [f"the {'bfloat16' if b else 'float32'} matmul's "
                           f"{rate / 1e9:.0f}: **{flops / rate:.0%}**"
                           for b, rate in rates.items() if b <= bfloat16]
                kind = "bfloat16" if bfloat16 else "float32"
                efficiency.append(f"- {corpus} (training in {kind}): {speed:,.0f} tokens/s x "
                                  f"{flops_per_char(vocab_size(path)) / 1e6:.1f} MFLOP = "
                                  f"{flops / 1e9:.1f} GFLOP/s, against {' and '.join(against)} "
                                  "(goal 70%)")
    lines += ["", "Training FLOP efficiency of the default model (tokens/s: the median epoch "
              "after the first):", *efficiency]
    record("Corpora of several sizes (corpora.py)", "python benchmarks/corpora.py "
           + " ".join(sys.argv[1:]), lines)


if __name__ == "__main__":
    main()
