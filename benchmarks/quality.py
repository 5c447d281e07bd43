"""Quality of the default preset: `lyricgen train --time-limit 10` on the shared corpus; the best
validation perplexity, with the continuous cache (what the preset reports as val_ppl) and
without it (val_ppl_plain). With --baseline, also the issue's plain LSTM under the same limit:
2 x 512 nn.LSTM, embedding 256, dropout 0.3, Adam 2e-3, batches 32 x 64.

    python benchmarks/quality.py [--corpus ZIP] [--minutes 10] [--baseline]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import DEFAULT_CORPUS, lyricgen_train, record

BASELINE = ["--backend", "builtin", "--input", "embedding", "--embedding-size", "256",
            "--hidden-size", "512", "--num-layers", "2", "--dropout", "0.3",
            "--embedding-dropout", "0", "--no-tie-weights", "--optimizer", "adam", "--lr", "0.002",
            "--weight-decay", "0", "--batch-size", "32", "--num-steps", "64", "--lr-schedule",
            "none", "--patience", "0", "--no-cache-eval"]


def best(rows: list[dict], key: str) -> tuple[float, int]:
    row = min((r for r in rows if r.get(key) is not None), key=lambda r: r[key])
    return row[key], row["epoch"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--baseline", action="store_true")
    args = parser.parse_args()
    limit = ["--data", str(args.corpus), "--time-limit", str(args.minutes), "--epochs", "1000"]
    lines = ["| run | epochs | best val_ppl (as reported) | best plain val ppl |",
             "|---|---|---|---|"]
    rows = lyricgen_train(limit, timeout=args.minutes * 60 + 600)
    reported, at = best(rows, "val_ppl")
    plain_key = "val_ppl_plain" if "val_ppl_plain" in rows[0] else "val_ppl"
    plain, plain_at = best(rows, plain_key)
    cache = " (continuous cache)" if plain_key == "val_ppl_plain" else ""
    lines.append(f"| default preset | {len(rows)} | **{reported:.1f}**{cache} at epoch {at} | "
                 f"{plain:.1f} at epoch {plain_at} |")
    if args.baseline:
        rows = lyricgen_train([*limit, *BASELINE], timeout=args.minutes * 60 + 600)
        plain, plain_at = best(rows, "val_ppl")
        lines.append(f"| plain 2 x 512 nn.LSTM (issue's baseline) | {len(rows)} | - | "
                     f"{plain:.1f} at epoch {plain_at} |")
    other = args.corpus != DEFAULT_CORPUS
    record("Quality of the default preset" + (f" on {args.corpus.name}" if other else "")
           + " (quality.py)",
           f"python benchmarks/quality.py --minutes {args.minutes:g}"
           + (" --baseline" if args.baseline else "")
           + (f" --corpus {args.corpus}" if other else ""), lines,
           key="quality" + (f"-{args.corpus.stem}" if other else ""))


if __name__ == "__main__":
    main()
