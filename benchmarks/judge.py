"""A judge of written lyrics that knows nothing of lyricgen (it imports none of it): how many
lines copy the training text, how many are made of real words, how varied and how rhymed.

- copied (k): a line holds k or more consecutive characters of a line of the training text
  (spaces apart on both sides, traditional characters read as simplified);
- words: the share of a line's Han characters that fall inside a word of two or more
  characters of jieba's general dictionary (dict.txt, about 350,000 words);
- good: not copied (6) and words at least the lower quartile of the held-out lines' own;
- ends: the share of lines whose last character closes such a word (a line cut to fit a
  form often ends in a stray character);
- distinct-2: distinct character bigrams over all bigrams, every text pooled;
- rhyme: two lines rhyme when the finals of their last Han characters (pypinyin) end alike,
  medials (i, u, ü) apart, with the groups a singer would hear as one (en/in/un, eng/ing/ong).
"""

from __future__ import annotations

import re
import statistics
from functools import lru_cache

SPACES = re.compile(r"\s+")
HAN = re.compile(r"[\u3400-\u9fff]")


@lru_cache(maxsize=1)
def dictionary() -> frozenset[str]:
    """jieba's words of two or more characters."""
    import jieba

    words = set()
    with jieba.get_dict_file() as f:  # lines of "word frequency tag"
        for row in f:
            word = row.decode("utf-8").split(" ", 1)[0]
            if len(word) >= 2:
                words.add(word)
    return frozenset(words)


@lru_cache(maxsize=1)
def _simplified():
    import opencc

    return opencc.OpenCC("t2s")


def plain(line: str) -> str:
    """A line as the judge compares it: simplified, no spaces."""
    return SPACES.sub("", _simplified().convert(line))


def words(line: str) -> float | None:
    """The share of the line's Han characters inside a dictionary word (None: no Han)."""
    line = plain(line)
    han = [i for i, c in enumerate(line) if HAN.match(c)]
    if not han:
        return None
    covered = set()
    vocabulary = dictionary()
    for i in range(len(line)):
        for j in range(i + 2, min(len(line), i + 8) + 1):
            if line[i:j] in vocabulary:
                covered.update(range(i, j))
    return sum(i in covered for i in han) / len(han)


FINAL_GROUPS = {  # a final's ending, medial apart -> its group
    "a": "a", "o": "o", "e": "o", "uo": "o", "ai": "ai", "ei": "ei", "ui": "ei", "ao": "ao",
    "ou": "ou", "iu": "ou", "an": "an", "en": "en", "in": "en", "un": "en", "vn": "en",
    "ang": "ang", "eng": "eng", "ing": "eng", "ong": "eng", "iong": "eng", "i": "i", "v": "i",
    "er": "i", "u": "u", "ie": "ie", "ve": "ie", "ue": "ie",
}


def ends_in_word(line: str) -> bool | None:
    """Whether the line's last Han character closes a dictionary word of two or more
    characters (None: the line does not end in a Han character)."""
    line = plain(line)
    if not line or not HAN.match(line[-1]):
        return None
    return any(line[-k:] in dictionary() for k in range(2, min(len(line), 8) + 1))


def rhyme_of(line: str) -> str | None:
    """The rhyme group of the line's last Han character; None without one."""
    from pypinyin import Style, lazy_pinyin

    han = [c for c in plain(line) if HAN.match(c)]
    if not han:
        return None
    final = lazy_pinyin(han[-1], style=Style.FINALS, v_to_u=False, strict=True)[0]
    for medial in ("i", "u", "v"):
        if final.startswith(medial) and final[1:] in FINAL_GROUPS and final not in FINAL_GROUPS:
            final = final[1:]
    return FINAL_GROUPS.get(final) or FINAL_GROUPS.get(final.lstrip("iuv")) or final


def distinct2(texts: list[str]) -> float:
    bigrams = [b for t in texts for line in t.split("\n") for b in zip(line, line[1:])]
    return len(set(bigrams)) / max(len(bigrams), 1)


class Judge:
    """Judges lines against `train` (the text the model learned) and `heldout` (the same
    writer's later lines: the yardstick)."""

    def __init__(self, train: str, heldout: str):
        self.lines = [plain(x) for x in train.split("\n") if x.strip()]
        self.runs = {k: {x[i:i + k] for x in self.lines for i in range(len(x) - k + 1)}
                     for k in (6, 8)}
        real = [w for x in heldout.split("\n") if (w := words(x)) is not None]
        self.floor = statistics.quantiles(real, n=4)[0]  # the lower quartile
        self.heldout = [x for x in heldout.split("\n") if x.strip()]

    def copied(self, line: str, k: int = 6) -> bool:
        line = plain(line)
        return any(line[i:i + k] in self.runs[k] for i in range(len(line) - k + 1))

    def good(self, line: str) -> bool:
        share = words(line)
        return not self.copied(line) and share is not None and share >= self.floor

    def figures(self, texts: list[str], scheme: str | None = None) -> dict[str, float]:
        """The figures of a setting's texts (songs or samples). `scheme`: the rhyme scheme the
        texts were written in (its pairs are counted); None: adjacent lines."""
        lines = [[x for x in t.split("\n") if x.strip()] for t in texts]
        flat = [x for song in lines for x in song]
        shares = [w for x in flat if (w := words(x)) is not None]
        ends = [e for x in flat if (e := ends_in_word(x)) is not None]
        return {"lines": len(flat),
                "good": statistics.mean(self.good(x) for x in flat),
                "words": statistics.mean(shares) if shares else 0.0,
                "copied6": statistics.mean(self.copied(x, 6) for x in flat),
                "copied8": statistics.mean(self.copied(x, 8) for x in flat),
                "ends": statistics.mean(ends) if ends else 0.0,
                "distinct2": distinct2(texts),
                "rhyme": rhymed(lines, scheme)}


def rhymed(songs: list[list[str]], scheme: str | None) -> float:
    """The share of pairs that rhyme: each line with the first earlier line of its letter in
    `scheme` (X: free), or, without a scheme, each line with the one before it."""
    pairs = hits = 0
    for song in songs:
        keys = [rhyme_of(x) for x in song]
        for i in range(1, len(song)):
            if scheme is None:
                j = i - 1
            else:
                letter = scheme[i % len(scheme)]
                earlier = [j for j in range(i) if scheme[j % len(scheme)] == letter]
                if letter == "X" or not earlier:
                    continue
                j = earlier[0]
            pairs += 1
            hits += keys[i] is not None and keys[i] == keys[j]
    return hits / max(pairs, 1)
