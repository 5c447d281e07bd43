"""Typed settings (data / model / train / sample), TOML presets and command-line overrides.

Precedence: dataclass defaults < `--config FILE.toml` < options given on the command line.
A TOML file has up to four tables, `[data]`, `[model]` and `[train]` (for `train`) and
`[sample]` (for `sample`), whose keys are the field names below (the command-line option names
with `_` for `-`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from lyricgen.data.cleaning import check_pattern
from lyricgen.config_values import checked_fields
from lyricgen.errors import SettingError, UsageError, check, check_int
from lyricgen.models.charlm import ModelConfig


# The defaults are the quality preset (configs/default.toml, what a bare `lyricgen train` runs):
# a regularised, weight-tied LSTM for corpora of tens of thousands of characters, evaluated
# with the cache and its repeats (benchmarks/RESULTS.md has its figures).


@dataclass
class DataConfig:
    data: str = "jaychou"  # a path (.txt, .zip or folder) or a dataset name from the registry
    newlines: Literal["keep", "space"] = "keep"
    max_chars: int | None = None
    val_fraction: float = 0.1
    # Cleaning (cleaning.py); None: the registered dataset's own setting, else off
    script: Literal["keep", "simplified", "traditional"] | None = None
    tidy_spaces: bool | None = None
    drop_lines: str | None = None  # a regular expression, or `credits`; "" drops none

    def validate(self) -> None:
        if self.max_chars is not None:
            check_int(self, "max_chars", 1)
        check(0.0 <= self.val_fraction < 1.0, "val_fraction", "must be in [0, 1)")
        if self.drop_lines:
            problem = check_pattern(self.drop_lines)
            check(problem is None, "drop_lines", problem or "")


@dataclass
class TrainConfig:
    num_steps: int = 64
    batch_size: int = 32
    sampling: Literal["adjacent", "random"] = "adjacent"
    optimizer: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = 2e-3
    weight_decay: float = 0.3
    clip: float = 1.0  # max global gradient norm; 0 disables clipping
    epochs: int = 50
    time_limit: float | None = None  # minutes of training
    lr_schedule: Literal["none", "halve", "plateau"] = "plateau"
    plateau_patience: int = 1
    patience: int = 5  # early stopping after this many epochs without improvement; 0 = off
    cache_eval: bool = True  # val_ppl with the lines, the cache and repeats (evaluate.py)
    seed: int = 0
    device: str = "auto"
    cuda_graphs: bool = True  # on CUDA, record the training step once and replay it per batch
    matmul: Literal["auto", "float32", "bfloat16"] = "auto"  # training/precision.py
    out: str = "checkpoints"
    preview_every: int = 0
    prefix: list[str] = field(default_factory=lambda: ["分开", "不分开"])
    init_from: str | None = None  # a checkpoint whose weights (and model settings) start a run

    def validate(self) -> None:
        for name in ("num_steps", "batch_size", "epochs", "plateau_patience"):
            check_int(self, name, 1)
        for name in ("patience", "preview_every"):
            check_int(self, name, 0)
        check_int(self, "seed", 0, SEED_MAX)
        # Non-finite settings would train to non-finite weights (inf, nan fail every test).
        check(self.lr > 0 and math.isfinite(self.lr), "lr", "must be a positive number")
        check(0 <= self.weight_decay < math.inf, "weight_decay", "must be a finite number >= 0")
        check(0 <= self.clip < math.inf, "clip", "must be a finite number >= 0 (0: no clipping)")
        check(self.time_limit is None or 0 < self.time_limit < math.inf, "time_limit",
              "must be a finite number > 0")
        check(self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda"), "device",
              "must be auto, cpu or cuda")
        check_out_name(self.out)


MAX_SAMPLES = 10_000  # texts a `sample` writes per prefix: more would run silent for minutes
REPETITION_PENALTY = 1.5  # for text drawn a line at a time (CTRL's)
SEED_MAX = 2**63 - 1  # torch.manual_seed takes up to 2**64 - 1; batching's seeds are mod 2**63


@dataclass
class SampleConfig:
    # The defaults are the best free-text setting measured (benchmarks/lyrics.py): lines drawn
    # 8 at a time with a repetition penalty, ranked by words and by how naturally they end
    length: int = 100
    greedy: bool = False
    temperature: float = 0.85
    top_k: int | None = None
    top_p: float | None = None
    num_samples: int = 1
    seed: int | None = None
    # The song form (form.py): with `lines` (or `acrostic`) the sampler writes lines.
    lines: int | None = None
    line_length: str | None = None  # 7, 5-9, or a pattern 7,7,5,7
    rhyme: str | None = None  # a scheme such as AABB; X: a free line
    rhyme_with: str | None = None  # a character whose rhyme group the A lines take
    acrostic: str | None = None  # line i starts with character i
    keywords: str | None = None  # words parted by commas, each once in the song
    candidates: int = 8  # lines drawn per line written; the best is kept (1: free text drawn
    # a character at a time, as it comes)
    # > 1 makes characters already in the text less likely (text drawn a line at a time);
    # None: REPETITION_PENALTY there, none (1) a character at a time
    repetition_penalty: float | None = None
    start_temperature: float | None = None  # the temperature of each line's first draw
    rarity: float = 0.0  # songs: the weight of a candidate's mean surprisal in its score
    words: float = 4.0  # the weight of the share of a candidate that is words (words.py)
    ending: float = 1.0  # the weight of the model's log-probability of a candidate's end
    counts: bool = True  # the training text's counts mixed with the LSTM, when it has them
    # No run of this many characters within a line equal to a run of the corpus (copies.py);
    # None: DEFAULT_RUN where the checkpoint holds its corpus; 0: copies allowed
    max_copy: int | None = None

    def validate(self) -> None:
        check_int(self, "length", 0)
        check_int(self, "num_samples", 1, MAX_SAMPLES)
        check_int(self, "candidates", 1, 1024)
        check(self.repetition_penalty is None or 1.0 <= self.repetition_penalty < math.inf,
              "repetition_penalty", "must be a number >= 1")
        check(self.repetition_penalty in (None, 1.0) or self.by_lines(), "repetition_penalty",
              "is for text drawn a line at a time: give --lines, --acrostic or --candidates "
              "above 1")
        check(self.greedy or 0 < self.temperature < math.inf, "temperature",
              "must be a finite number > 0 (or use --greedy)")
        check(self.start_temperature is None or 0 < self.start_temperature < math.inf,
              "start_temperature", "must be a finite number > 0")
        check(self.start_temperature is None or self.by_lines(), "start_temperature",
              "is for text drawn a line at a time: give --lines, --acrostic or --candidates "
              "above 1")
        for key in ("rarity", "words", "ending"):  # rank candidates (none when there is one)
            check(0 <= getattr(self, key) < math.inf, key, "must be a number >= 0")
        check(self.top_k is None or self.top_k >= 1, "top_k", "must be at least 1")
        check(self.top_p is None or 0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
        check(self.seed is None or 0 <= self.seed <= 2**63 - 1, "seed",
              f"must be from 0 to {2**63 - 1}")
        check(self.lines is None or 1 <= self.lines <= 1000, "lines", "must be from 1 to 1000")
        if self.max_copy:
            check_int(self, "max_copy", 2, 1000)
        check(self.max_copy is None or self.max_copy >= 0, "max_copy",
              "must be 0 (copies allowed) or at least 2")

    def penalty(self) -> float:
        """The repetition penalty in force."""
        if self.repetition_penalty is not None:
            return self.repetition_penalty
        return REPETITION_PENALTY if self.by_lines() else 1.0

    def by_lines(self) -> bool:
        """Whether text is drawn a line at a time (songwriter.py): a song, or free text with
        candidates to rank (else a character at a time, as it comes)."""
        return bool(self.lines or self.acrostic) or self.candidates > 1


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)  # `lyricgen sample`'s defaults

    def validate(self) -> Config:
        for table in SECTIONS:
            try:
                getattr(self, table).validate()
            except SettingError as e:  # `seed` is in [train] and [sample]: say which
                e.table = table
                raise
        return self

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> Config:
        unknown = set(values) - set(SECTIONS)
        if unknown:
            raise UsageError(f"{source}: unknown table [{sorted(unknown)[0]}] "
                             f"(known: {', '.join(f'[{s}]' for s in SECTIONS)})")
        sections = {}
        for name, klass in SECTIONS.items():
            table = values.get(name, {})
            if not isinstance(table, dict):
                raise UsageError(f"{source} [{name}] must be a table")
            sections[name] = klass(**checked_fields(klass, table, f"{source} [{name}]"))
        return cls(**sections)

    def value(self, key: str) -> Any:
        """The setting `key` (a flat name, as the command line gives it)."""
        return getattr(getattr(self, SECTION_OF[key]), key)

    def with_overrides(self, overrides: dict[str, Any]) -> Config:
        """A copy with flat `key -> value` overrides (command-line options) applied."""
        values = self.to_dict()
        for key, value in overrides.items():
            values[SECTION_OF[key]][key] = value
        return Config.from_dict(values, source="options")


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig,
            "sample": SampleConfig}
# Flat option names (as `train` takes them) to their tables; [sample] is `sample`'s own.
SECTION_OF = {f.name: s for s, klass in SECTIONS.items() if s != "sample" for f in fields(klass)}


def check_out_name(out: str) -> str:
    check(out.strip() != "", "out", "must name a folder")
    return out
