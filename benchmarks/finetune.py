"""Fine-tuning (`train --init-from`): the default preset pretrained on a general Chinese text and
then trained on the Jay Chou lyrics, against the lyrics alone, in the same total time.

    python benchmarks/finetune.py --general TEXT [--corpus ZIP] [--minutes 10] [--share 0.5]

TEXT: Debian's fortunes-zh (`apt-get download fortunes-zh`, `dpkg-deb -x`, the file
usr/share/games/fortunes/chinese), whose terminal colour codes and `%` separators are
stripped here into a temporary file; never committed. Pretraining validates without the
cache (its figure does not matter there, and it is slow on a long held-out text).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from common import DEFAULT_CORPUS, record


def clean(raw: Path, out: Path) -> int:
    """The fortunes as plain text: colour codes and separator lines gone; its characters."""
    text = raw.read_text(encoding="utf-8", errors="replace")
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    text = "\n".join(line for line in text.splitlines() if line.strip() != "%")
    out.write_text(text, encoding="utf-8")
    return len(text)


def train(args: list[str]) -> list[dict]:
    subprocess.run([sys.executable, "-m", "lyricgen", "train", "--preview-every", "0", *args],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = Path(args[args.index("--out") + 1])
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def best(rows: list[dict], key: str) -> float:
    return min(r[key] for r in rows if r.get(key) is not None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--general", type=Path, required=True)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--share", type=float, default=0.5, help="of the time for pretraining")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        general = Path(tmp) / "general.txt"
        chars = clean(args.general, general)
        lyrics = ["--data", str(args.corpus)]
        alone = train([*lyrics, "--time-limit", str(args.minutes), "--out", f"{tmp}/alone"])
        pre = train(["--data", str(general), "--no-cache-eval", "--out", f"{tmp}/pre",
                     "--time-limit", str(args.minutes * args.share)])
        tuned = train([*lyrics, "--init-from", f"{tmp}/pre/best.pt", "--out", f"{tmp}/tuned",
                       "--time-limit", str(args.minutes * (1 - args.share))])
    gain = 1 - best(tuned, "val_ppl_plain") / best(alone, "val_ppl_plain")
    lstm_gain = 1 - best(tuned, "val_ppl_lstm") / best(alone, "val_ppl_lstm")
    lines = [f"General text: {args.general.name}, {chars:,} characters after cleaning. "
             f"{args.minutes:g} minutes in all; pretraining {args.share:.0%} of them.", "",
             "| run | epochs | best val ppl plain (LSTM + counts) | LSTM alone | with the cache |",
             "|---|---|---|---|---|",
             f"| Jay Chou alone | {len(alone)} | {best(alone, 'val_ppl_plain'):.1f} | "
             f"{best(alone, 'val_ppl_lstm'):.1f} | {best(alone, 'val_ppl'):.1f} |",
             f"| pretraining on the general text | {len(pre)} | {best(pre, 'val_ppl'):.1f} "
             f"(its own held-out text) | {best(pre, 'val_ppl_lstm'):.1f} | - |",
             f"| then Jay Chou (--init-from) | {len(tuned)} | {best(tuned, 'val_ppl_plain'):.1f} "
             f"| {best(tuned, 'val_ppl_lstm'):.1f} | {best(tuned, 'val_ppl'):.1f} |", "",
             f"- fine-tuned against alone, plain val ppl: **{gain:.0%} lower** (goal 20%); the "
             f"LSTM alone: {lstm_gain:.0%} lower"]
    record("Fine-tuning from a general text (finetune.py)", "python benchmarks/finetune.py "
           + " ".join(sys.argv[1:]), lines)


if __name__ == "__main__":
    main()
