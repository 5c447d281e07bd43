"""Chinese words the corpus may be too small to teach: CC-CEDICT's entries of two or more
characters (about 100,000, from the pypinyin-dict package), for ranking candidate lines by how
much of them reads as words (`sample --words`)."""

from __future__ import annotations

from functools import lru_cache

from lyricgen.songs.rhyme import is_han

LONGEST = 8  # characters: longer entries are idioms and names, rare in a line of lyrics


@lru_cache(maxsize=1)
def dictionary() -> frozenset[str]:
    from pypinyin_dict.phrase_pinyin_data import cc_cedict  # about a second to load

    return frozenset(w for w in cc_cedict.phrases_dict if 2 <= len(w) <= LONGEST)


def coverage(line: str) -> float:
    """The share of the line's Han characters that lie inside a word of the dictionary, each
    other character glued to a Han one ("h态度", "秘密〗") counting as one outside words (0
    without Han characters)."""
    stray = sum(not is_han(c) for token in line.split() if any(map(is_han, token))
                for c in token)
    line = "".join(line.split())
    words = dictionary()
    covered = [False] * len(line)
    for i in range(len(line) - 1):
        for j in range(i + 2, min(len(line), i + LONGEST) + 1):
            if line[i:j] in words:
                covered[i:j] = [True] * (j - i)
    han = [k for k, c in enumerate(line) if is_han(c)]
    return sum(covered[k] for k in han) / (len(han) + stray) if han else 0.0
