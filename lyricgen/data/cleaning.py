"""A corpus's text made clean before training: one Chinese script (OpenCC), tidy spaces, and
no credit lines (作词, 作曲, 歌词提供...), which a model would otherwise learn and write back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# Lines that credit rather than sing: a role and a colon, or the lyric sites' signatures.
CREDITS = (r"^\s*(作词|作曲|编曲|填词|词|曲|演唱|原唱|歌手|制作人?|监制|混音|和声|录音|出品)\s*[:：]"
           r"|歌词提供|支持正版|LRC|www\.|\.com\b")
# Every kind of space but the newline: full-width (U+3000), no-break, tabs, ...
_SPACES = re.compile(r"[^\S\n]+")


@dataclass(frozen=True)
class Cleaning:
    script: str = "keep"  # keep, simplified or traditional (OpenCC's t2s / s2t)
    tidy_spaces: bool = False  # every run of spaces one ASCII space, none at a line's ends
    drop_lines: str = ""  # a regular expression (or `credits`): lines it matches are dropped

    def apply(self, text: str) -> str:
        if self.script != "keep":
            text = _converter("t2s" if self.script == "simplified" else "s2t").convert(text)
        if self.tidy_spaces:
            text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))
        if self.drop_lines:
            pattern = re.compile(expand(self.drop_lines))
            text = "\n".join(line for line in text.split("\n") if not pattern.search(line))
        return text


@lru_cache(maxsize=2)
def _converter(config: str):
    import opencc  # loads its dictionaries: only when a script is asked for

    return opencc.OpenCC(config)


def expand(drop_lines: str) -> str:
    """`--drop-lines`: `credits` stands for CREDITS."""
    return CREDITS if drop_lines == "credits" else drop_lines


def check_pattern(drop_lines: str) -> str | None:
    """What is wrong with `drop_lines` as a regular expression (None: nothing)."""
    try:
        re.compile(expand(drop_lines))
    except re.error as e:
        return f"is not a regular expression ({e})"
    return None
