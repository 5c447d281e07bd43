"""Which lines rhyme: the rhyme key of a line's last character or word.

For a Han character the key is its 十三辙 group (the thirteen rhyme groups of Chinese song and
opera), from the final of its pinyin (pypinyin's most common reading, strict finals). Other
text follows a simple rule: the key of a line is its last word, lower-cased, from the start of
its last run of vowels (a e i o u y): "night" and "light" share "ight", "rain" and "again"
"ain". Characters without a key (digits, punctuation) do not rhyme.
"""

from __future__ import annotations

import functools
import re

from pypinyin import Style, lazy_pinyin

# 十三辙, each group by the strict pinyin finals it holds (ü written v, as pypinyin does).
GROUPS = {
    "发花": ("a", "ia", "ua"),
    "梭波": ("o", "uo", "e"),
    "乜斜": ("ie", "ve", "ue", "ê"),
    "一七": ("i", "v", "er"),
    "姑苏": ("u",),
    "怀来": ("ai", "uai"),
    "灰堆": ("ei", "uei", "ui"),
    "遥条": ("ao", "iao"),
    "油求": ("ou", "iou", "iu"),
    "言前": ("an", "ian", "uan", "van"),
    "人辰": ("en", "in", "uen", "un", "vn"),
    "江阳": ("ang", "iang", "uang"),
    "中东": ("eng", "ing", "ong", "iong", "ueng"),
}
GROUP_OF_FINAL = {final: group for group, finals in GROUPS.items() for final in finals}
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_WORD_END = re.compile(r"([a-z']+)[^a-z']*$")
_LAST_VOWELS = re.compile(r"[aeiouy]+[^aeiouy]*$")


def is_han(char: str) -> bool:
    return bool(_HAN.fullmatch(char))


@functools.lru_cache(maxsize=65536)
def han_group(char: str) -> str | None:
    """The 十三辙 group of one Han character, or None."""
    if not is_han(char):
        return None
    final = lazy_pinyin(char, style=Style.FINALS, strict=True)[0]
    return GROUP_OF_FINAL.get(final)


def line_key(line: str) -> str | None:
    """The rhyme key of a line: its last non-space character's group if that is Han, else the
    ending of its last word (see the module's rule); None when it has neither."""
    text = line.rstrip()
    if not text:
        return None
    if is_han(text[-1]):
        return han_group(text[-1])
    word = _WORD_END.search(text.lower())
    if word is None:
        return None
    ending = _LAST_VOWELS.search(word.group(1))
    return ending.group(0) if ending else None


def char_key(char: str) -> str | None:
    """The key a line ending in `char` has, for a Han character; None otherwise (other text
    rhymes by word, which one character does not decide)."""
    return han_group(char)
