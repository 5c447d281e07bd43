"""Test texts whose best possible held-out perplexity is known exactly, of several kinds, so
that no single text decides how the default trains (issue 27). Each source gives a text and,
for every character, its true probability given everything before it; the limit over
lyricgen's held-out part (its last tenth) is exp of their mean surprisal there. Every character
is an invented CJK code point (nothing copied); newlines are certain given the position.

- `hmm`: synthetic.py's hidden Markov source (32 states, 400 characters, lines of 7 and 5).
- `markov3`: a sparse order-3 chain over 30 characters, lines of 8, the dependence crossing line
  ends: a small vocabulary and a short memory, a text a large network memorises.
- `pool`: lines drawn at random from a fixed pool of 600 lines: the text is to be memorised.
- `refrain`: songs of 24 lines of 8 whose lines, a third of the time, repeat an earlier line
  of the same song, else come from an order-1 chain over 1,000 characters: long-range repeats.
- `wide`: an order-1 chain over 6,000 characters, each followed by one of 40, lines of 12:
  a large vocabulary and a long text.

    python benchmarks/texts.py NAME OUT.txt [--chars N]   # writes the text, prints the limit
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VAL_FRACTION = 0.1
BASE = 0x4E00


def chars(n: int, spacing: int = 1) -> list[str]:
    return [chr(BASE + spacing * i) for i in range(n)]


def log(p: float) -> float:
    """log p, -inf for an impossible character (which the sources' own texts never hold)."""
    return math.log(p) if p > 0 else -math.inf


def draw(rng: np.random.Generator, cumulative: np.ndarray) -> int:
    """An index drawn from the distribution whose cumulative sums are `cumulative`."""
    return min(int(np.searchsorted(cumulative, rng.random() * cumulative[-1])),
               len(cumulative) - 1)


@dataclass(frozen=True)
class Hidden:
    """A hidden state (`states` of them) moving by a sparse random transition matrix and
    emitting one of `alphabet` characters from its own sparse distribution (Dirichlet
    concentrations `moves` and `emits`: small is sparse); lines of `lines` lengths in turn.
    The true probabilities come from the forward algorithm."""
    states: int
    alphabet: int
    moves: float
    emits: float
    lines: tuple[int, ...] = (7, 5)
    spacing: int = 1  # code points between characters (synthetic.py's text used 7)

    def tables(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        transition = rng.dirichlet(np.full(self.states, self.moves), size=self.states)
        return transition, rng.dirichlet(np.full(self.alphabet, self.emits), size=self.states)

    def generate(self, n: int, seed: int) -> str:
        transition, emission = self.tables(seed)
        rng, alphabet = np.random.default_rng(seed + 1), chars(self.alphabet, self.spacing)
        state, out, line = rng.integers(self.states), [], 0
        while len(out) < n:
            for _ in range(self.lines[line % len(self.lines)]):
                out.append(alphabet[rng.choice(self.alphabet, p=emission[state])])
                state = rng.choice(self.states, p=transition[state])
            out.append("\n")
            line += 1
        return "".join(out)

    def log_probs(self, text: str, seed: int) -> np.ndarray:
        transition, emission = self.tables(seed)
        index = {c: i for i, c in enumerate(chars(self.alphabet, self.spacing))}
        belief = np.full(self.states, 1.0 / self.states)  # over the state emitting next
        out = np.zeros(len(text))
        for t, c in enumerate(text):
            if c == "\n":
                continue
            joint = belief * emission[:, index[c]]
            out[t] = log(joint.sum())
            belief = (joint / joint.sum()) @ transition
        return out


@dataclass(frozen=True)
class Chain:
    """An order-`order` chain over `alphabet` characters, each context followed by one of
    `support` characters with Dirichlet(`spread`) weights; lines of `line` characters, the
    context crossing line ends."""
    order: int
    alphabet: int
    support: int
    spread: float
    line: int

    def tables(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(successors, probabilities), each (contexts, support)."""
        rng = np.random.default_rng(seed)
        contexts = self.alphabet ** self.order
        successors = np.stack([rng.choice(self.alphabet, self.support, replace=False)
                               for _ in range(contexts)])
        return successors, rng.dirichlet(np.full(self.support, self.spread), size=contexts)

    def generate(self, n: int, seed: int) -> str:
        successors, probs = self.tables(seed)
        cumulative = probs.cumsum(axis=1)
        rng, alphabet = np.random.default_rng(seed + 1), chars(self.alphabet)
        context, out = 0, []
        while len(out) < n:
            for _ in range(self.line):
                c = int(successors[context, draw(rng, cumulative[context])])
                out.append(alphabet[c])
                context = (context * self.alphabet + c) % self.alphabet ** self.order
            out.append("\n")
        return "".join(out)

    def log_probs(self, text: str, seed: int) -> np.ndarray:
        successors, probs = self.tables(seed)
        lookup = [dict(zip(s.tolist(), p.tolist())) for s, p in zip(successors, probs)]
        out, context = np.zeros(len(text)), 0
        for t, ch in enumerate(text):
            if ch == "\n":
                continue
            c = ord(ch) - BASE
            out[t] = log(lookup[context].get(c, 0.0))
            context = (context * self.alphabet + c) % self.alphabet ** self.order
        return out


@dataclass(frozen=True)
class Pool:
    """Lines drawn uniformly, independently, from `size` lines of `line` characters over
    `alphabet` characters."""
    size: int
    alphabet: int
    line: int

    def lines(self, seed: int) -> list[str]:
        rng, alphabet = np.random.default_rng(seed), chars(self.alphabet)
        return ["".join(alphabet[c] for c in rng.integers(self.alphabet, size=self.line))
                for _ in range(self.size)]

    def generate(self, n: int, seed: int) -> str:
        pool, rng = self.lines(seed), np.random.default_rng(seed + 1)
        out: list[str] = []
        while len(out) * (self.line + 1) < n:
            out.append(pool[rng.integers(self.size)] + "\n")
        return "".join(out)

    def log_probs(self, text: str, seed: int) -> np.ndarray:
        prefixes: dict[str, int] = {}  # how many pool lines begin so
        for line in self.lines(seed):
            for i in range(self.line + 1):
                prefixes[line[:i]] = prefixes.get(line[:i], 0) + 1
        out, start = np.zeros(len(text)), 0
        for t, ch in enumerate(text):
            if ch == "\n":
                start = t + 1
                continue
            out[t] = log(prefixes.get(text[start:t + 1], 0) / prefixes[text[start:t]])
        return out


@dataclass(frozen=True)
class Refrain:
    """Songs of `lines` lines of `line` characters, a blank line after each; a line repeats
    an earlier line of its song (each alike likely) with probability `repeat`, else it is new,
    from an order-1 chain over `alphabet` characters started afresh."""
    lines: int
    line: int
    repeat: float
    chain: Chain

    def generate(self, n: int, seed: int) -> str:
        successors, probs = self.chain.tables(seed)
        cumulative = probs.cumsum(axis=1)
        rng, alphabet = np.random.default_rng(seed + 1), chars(self.chain.alphabet)
        out: list[str] = []
        while len(out) * self.lines * (self.line + 1) < n:
            song: list[str] = []
            for _ in range(self.lines):
                if song and rng.random() < self.repeat:
                    song.append(song[rng.integers(len(song))])
                    continue
                context, line = 0, []
                for _ in range(self.line):
                    context = int(successors[context, draw(rng, cumulative[context])])
                    line.append(alphabet[context])
                song.append("".join(line))
            out.append("\n".join(song) + "\n\n")
        return "".join(out)

    def log_probs(self, text: str, seed: int) -> np.ndarray:
        successors, probs = self.chain.tables(seed)
        lookup = [dict(zip(s.tolist(), p.tolist())) for s, p in zip(successors, probs)]
        out = np.zeros(len(text))
        position = 0
        for song in text.split("\n\n"):
            earlier: list[str] = []
            for line in song.split("\n") if song else []:
                new = 1.0 - self.repeat if earlier else 1.0  # P(new, prefix so far)
                context, prefix = 0, ""
                for ch in line:
                    c = ord(ch) - BASE
                    p_new = lookup[context].get(c, 0.0)
                    matching = sum(e.startswith(prefix) for e in earlier)
                    following = sum(e.startswith(prefix + ch) for e in earlier)
                    old = self.repeat / len(earlier) if earlier else 0.0
                    before = new + old * matching
                    after = new * p_new + old * following
                    out[position] = log(after / before)
                    new *= p_new
                    context, prefix, position = c, prefix + ch, position + 1
                earlier.append(line)
                position += 1  # the newline
            position += 1  # the blank line
        return out


SOURCES = {
    "hmm": (Hidden(states=32, alphabet=400, moves=0.02, emits=0.003, spacing=7), 300_000),
    "hmm60": (Hidden(states=64, alphabet=60, moves=0.01, emits=0.005), 300_000),
    "markov2": (Chain(order=2, alphabet=30, support=5, spread=0.5, line=8), 300_000),
    "pool": (Pool(size=600, alphabet=3000, line=8), 50_000),
    "refrain": (Refrain(lines=24, line=8, repeat=1 / 3,
                        chain=Chain(order=1, alphabet=1000, support=30, spread=0.3, line=8)),
                500_000),
    "wide": (Chain(order=1, alphabet=6000, support=20, spread=0.3, line=12), 2_000_000),
}


def text(name: str, n: int | None = None, seed: int = 0) -> tuple[str, float]:
    """The text `name` (about `n` characters, by default its own size) and its limit."""
    source, size = SOURCES[name]
    body = source.generate(n or size, seed)
    held_out = source.log_probs(body, seed)[train_size(body) + 1:]
    return body, math.exp(-held_out.mean())


def train_size(body: str) -> int:
    """The characters lyricgen trains on (the rest, less one, are its held-out targets)."""
    return len(body) - int(len(body) * VAL_FRACTION)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=SOURCES)
    parser.add_argument("out", type=Path)
    parser.add_argument("--chars", type=int)
    args = parser.parse_args()
    body, limit = text(args.name, args.chars)
    args.out.write_text(body, encoding="utf-8")
    print(f"{args.name}: {len(body):,} characters, {len(set(body))} distinct; best possible "
          f"val ppl {limit:.3f}")


if __name__ == "__main__":
    main()
