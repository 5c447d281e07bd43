"""The default sizes itself: its regularisation chosen from the corpus and the budget, for the
settings no option and no preset pins.

Two things decide how much a model must be held back from memorising its training text: how
much text there is for each of its weights (`chars_per_weight`: training characters over the
model's parameters, which grow with the vocabulary), and how often it will read each character
(`passes`: with --time-limit, the characters a training step gets through per second here,
measured on a few steps of the model itself, times the seconds given, over the training
characters, rounded to a power of sqrt(2) so that the same seed and settings choose alike
however busy the machine, at most --epochs; without one, --epochs). The rule:

    by the text:    s_text   = clamp(log(TEXT_HIGH / chars_per_weight) / log(TEXT_HIGH / TEXT_LOW))
    by the budget:  s_passes = clamp(log(passes / PASSES_LOW) / log(PASSES_HIGH / PASSES_LOW))
    strength s = min(s_text, s_passes), each clamped to [0, 1]
    dropout = 0.1 + 0.55 s,  embedding dropout = 0.25 s,  weight decay = 0.01 (30 ** s)

That is where training starts; training then measures (training/regularising.py): whenever the
held-out figure stalls while the training figure still falls, the strength rises a step.

s = 1 is the preset tuned on the Jay Chou lyrics (configs/default.toml: 0.65, 0.25, 0.3; 57k
characters for 3.4M weights, 0.017 a weight, read ~40 times in 10 minutes here); s = 0 is what
measured best on a 270k-character text of 205 characters' vocabulary (0.12 a weight) and on
the fortunes-zh text (benchmarks/RESULTS.md, "Sizing", has the runs). A text read once or twice
is barely held back whatever its size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from lyricgen.config import Config
from lyricgen.data.corpus import Corpus

TEXT_LOW, TEXT_HIGH = 0.02, 0.1  # characters per weight: the most regularisation, the least
PASSES_LOW, PASSES_HIGH = 2.0, 20.0  # passes: the least regularisation, the most
SIZED = ("dropout", "embedding_dropout", "weight_decay")
SHOWN = {"dropout": ".2f", "embedding_dropout": ".2f", "weight_decay": ".3g"}  # formats


@dataclass(frozen=True)
class Choice:
    strength: float
    passes: float
    chars_per_weight: float

    @property
    def values(self) -> dict[str, float]:
        return settings(self.strength)

    def describe(self, chosen: list[str], chars_per_s: float | None) -> str:
        """The line `train` prints: what the choice rests on, and the `chosen` settings."""
        speed = f" at {chars_per_s:,.0f} characters/s, to the nearest sqrt(2)" if chars_per_s \
            else ""
        return (f"sized for {self.chars_per_weight:.3f} training characters per weight and "
                f"about {self.passes:.1f} passes over them{speed}: {shown(self.values, chosen)}"
                " to start, raised if held-out stalls while training improves (an option or a "
                "preset key pins each)")


def choose(passes: float, chars_per_weight: float) -> Choice:
    """The rule above."""
    s = min(_between(TEXT_HIGH / chars_per_weight, TEXT_HIGH / TEXT_LOW),
            _between(passes / PASSES_LOW, PASSES_HIGH / PASSES_LOW))
    return Choice(s, passes, chars_per_weight)


def settings(strength: float) -> dict[str, float]:
    """The regularisation of `strength` (0 the lightest, 1 the Jay Chou preset's)."""
    s = strength
    return {"dropout": round(0.1 + 0.55 * s, 3), "embedding_dropout": round(0.25 * s, 3),
            "weight_decay": round(0.01 * 30 ** s, 4)}


def shown(values: dict[str, float], keys: list[str]) -> str:
    """`keys` of `values` as the lines about them say them: "dropout 0.10, weight decay ..."."""
    return ", ".join(f"{key.replace('_', ' ')} {values[key]:{SHOWN[key]}}" for key in keys)


def with_settings(cfg: Config, values: dict[str, float]) -> Config:
    """`cfg` with the regularisation `values` (any of SIZED) in place."""
    model = replace(cfg.model, **{k: v for k, v in values.items() if k != "weight_decay"})
    train = replace(cfg.train, weight_decay=values["weight_decay"]) \
        if "weight_decay" in values else cfg.train
    return replace(cfg, model=model, train=train)


def snapped(passes: float) -> float:
    """`passes` to the nearest power of sqrt(2): a measured speed varies from run to run (a
    busier machine, a warmer cache), and the choice must not, so that a seed repeats a run.
    Speeds within about 19% of each other choose alike unless they straddle a step."""
    return 2 ** (round(2 * math.log2(passes)) / 2) if passes > 0 else passes


def _between(ratio: float, full: float) -> float:
    """log(ratio) / log(full), clamped to [0, 1]."""
    return min(max(math.log(max(ratio, 1e-12)) / math.log(full), 0.0), 1.0)


@dataclass(frozen=True)
class Sized:
    cfg: Config  # with the chosen settings
    line: str | None  # what was chosen and why (None: everything was given)
    strength: float  # the rule's
    free: list[str]  # the settings chosen, which training may strengthen


def size(cfg: Config, corpus: Corpus, pinned: set[str],
         speed: Callable[[Config, Corpus], float]) -> Sized:
    """`cfg` with the settings not in `pinned` chosen by the rule, and the line that says so.
    `speed(cfg, corpus)`: characters per second of a training step, asked for with
    --time-limit only (training.probe.measure_speed)."""
    free = [key for key in SIZED if key not in pinned]
    if not free:
        return Sized(cfg, None, 1.0, [])
    t = cfg.train
    chars_per_s = None
    passes = float(t.epochs)
    if t.time_limit is not None:
        chars_per_s = speed(cfg, corpus)
        passes = min(passes, snapped(t.time_limit * 60 * chars_per_s / len(corpus.train_ids)))
    weights = cfg.model.parameter_count(len(corpus.vocab))
    choice = choose(passes, len(corpus.train_ids) / weights)
    kept = [k for k in SIZED if k in pinned]
    line = choice.describe(free, chars_per_s) + (f" ({', '.join(kept)} as given)" if kept
                                                 else "")
    return Sized(with_settings(cfg, {k: v for k, v in choice.values.items() if k in free}),
                 line, choice.strength, free)
