"""A text whose best possible perplexity is known exactly: a hidden Markov source with lines.

A hidden state (STATES of them) moves by a sparse random transition matrix and emits one of
ALPHABET invented characters (CJK code points, nothing copied) from its own sparse
distribution; lines have 7 and 5 characters in turn, each ended by a newline. The true
conditional probability of every character given everything before it is computed by the
forward algorithm (the newlines are certain given the position), so the best perplexity any
model can reach on a held-out part is exp(mean -log p_true) over that part.

    python benchmarks/synthetic.py OUT.txt [--chars 300000]   # writes the text, prints the limit
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

STATES, ALPHABET = 32, 400
LINE_LENGTHS = (7, 5)
TRANSITION_SPREAD, EMISSION_SPREAD = 0.02, 0.003  # Dirichlet concentrations: small is sparse
CHARS = [chr(0x4E00 + 7 * i) for i in range(ALPHABET)]


def source(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    transition = rng.dirichlet(np.full(STATES, TRANSITION_SPREAD), size=STATES)  # (S, S)
    emission = rng.dirichlet(np.full(ALPHABET, EMISSION_SPREAD), size=STATES)  # (S, A)
    return transition, emission


def generate(chars: int, seed: int = 0) -> str:
    """About `chars` characters of the source (whole lines)."""
    transition, emission = source(seed)
    rng = np.random.default_rng(seed + 1)
    state, out, line = rng.integers(STATES), [], 0
    while len(out) < chars:
        for _ in range(LINE_LENGTHS[line % len(LINE_LENGTHS)]):
            out.append(CHARS[rng.choice(ALPHABET, p=emission[state])])
            state = rng.choice(STATES, p=transition[state])
        out.append("\n")
        line += 1
    return "".join(out)


def true_log_probs(text: str, seed: int = 0) -> np.ndarray:
    """log p_true(c_t | c_<t) for every character of `text` (0 for the newlines)."""
    transition, emission = source(seed)
    index = {c: i for i, c in enumerate(CHARS)}
    belief = np.full(STATES, 1.0 / STATES)  # over the state emitting the next character
    out = np.zeros(len(text))
    for t, c in enumerate(text):
        if c == "\n":
            continue
        joint = belief * emission[:, index[c]]
        total = joint.sum()
        out[t] = math.log(total)
        belief = (joint / total) @ transition
    return out


def limit(text: str, num_train: int, seed: int = 0) -> float:
    """The best possible perplexity over text[num_train + 1:] (lyricgen's held-out targets)."""
    return math.exp(-true_log_probs(text, seed)[num_train + 1:].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--chars", type=int, default=300_000)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    args = parser.parse_args()
    text = generate(args.chars)
    args.out.write_text(text, encoding="utf-8")
    num_train = len(text) - int(len(text) * args.val_fraction)
    print(f"{len(text)} characters; best possible val ppl {limit(text, num_train):.3f}")


if __name__ == "__main__":
    main()
