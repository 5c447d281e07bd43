"""A song's form: how many lines, how long each is, which lines rhyme, how each starts.

Made from `lyricgen sample`'s options and checked against a model's vocabulary before anything
is drawn, so that a form that cannot be met is a one-line error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lyricgen.songs import rhyme
from lyricgen.errors import UsageError
from lyricgen.songs.keywords import parse as parse_keywords
from lyricgen.data.vocab import Vocab

# Without --line-length the model ends its lines, from 5 characters (a tenth of the Jay Chou
# corpus's lines are shorter; ranked by words, one-word lines would win) to 30.
DEFAULT_LENGTH = (5, 30)
MAX_LENGTH = 1000
MAX_LINES = 1000  # as --lines
FREE = "X"  # a line of the rhyme scheme that need not rhyme


@dataclass(frozen=True)
class Form:
    lines: int
    lengths: tuple[tuple[int, int], ...]  # per line: (fewest, most) characters, spaces apart
    scheme: str  # per line: a letter A-Z (lines of one letter rhyme) or X (free)
    rhyme_with: str | None = None  # the 十三辙 group of letter A, when fixed
    acrostic: str | None = None  # line i starts with acrostic[i]
    chars: int | None = None  # free text: lines until this many characters after the prefix
    keywords: tuple[str, ...] = ()  # words the song must hold, each once (keywords.py)

    def length(self, i: int) -> tuple[int, int]:
        return self.lengths[i % len(self.lengths)]

    def letter(self, i: int) -> str:
        return self.scheme[i % len(self.scheme)]


def make_form(lines: int | None, line_length: str | None, scheme: str | None,
              rhyme_with: str | None, acrostic: str | None, keywords: str | None = None) -> Form:
    """The form the options describe (the options' names are in its errors)."""
    if acrostic is not None:
        acrostic = "".join(acrostic.split())
        if not acrostic:
            raise UsageError("--acrostic needs at least one character")
        if lines is not None and lines != len(acrostic):
            raise UsageError(f"--acrostic {acrostic!r} sets {len(acrostic)} lines; drop "
                             f"--lines {lines}")
        lines = len(acrostic)
        if lines > MAX_LINES:
            raise UsageError(f"--acrostic: {lines} characters set {lines} lines; at most "
                             f"{MAX_LINES}")
    if lines is None:
        raise UsageError("a song needs --lines N (or --acrostic)")
    group = None
    if rhyme_with is not None:
        if len(rhyme_with) != 1:
            raise UsageError(f"--rhyme-with {rhyme_with!r}: give one Han character whose rhyme "
                             "group the A lines take")
        if rhyme.char_key(rhyme_with) is None:
            raise UsageError(f"--rhyme-with {rhyme_with!r}: {rhyme_with} has no rhyme group "
                             "(its pinyin has no final); give another character")
        group = rhyme.char_key(rhyme_with)
    lengths = parse_lengths(line_length)
    words = parse_keywords(keywords)
    if len(words) > lines:
        raise UsageError(f"--keywords: {len(words)} keywords for {lines} lines; give at most "
                         "one a line")
    longest = max(high for _, high in lengths)
    if any(len(w) > longest - bool(acrostic) for w in words):
        raise UsageError(f"--keywords: {max(words, key=len)!r} does not fit in lines of "
                         f"{longest} characters" + (" after the acrostic's" if acrostic else ""))
    return Form(lines, lengths, parse_scheme(scheme, group is not None), group, acrostic,
                keywords=words)


def free_form(length: int) -> Form:
    """Free text drawn a line at a time: lines the model ends, until `length` characters."""
    return Form(length + 1, (DEFAULT_LENGTH,), FREE, chars=length)


def parse_lengths(spec: str | None) -> tuple[tuple[int, int], ...]:
    """'7' -> 7 characters; '5-9' -> 5 to 9; '7,7,5,7' -> a pattern repeated over the lines."""
    if spec is None:
        return (DEFAULT_LENGTH,)
    out = []
    for part in spec.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if m is None:
            raise UsageError(f"--line-length {spec!r}: give a number (7), a range (5-9) or a "
                             "pattern (7,7,5,7)")
        low, high = int(m.group(1)), int(m.group(2) or m.group(1))
        if not 1 <= low <= high <= MAX_LENGTH:
            raise UsageError(f"--line-length {spec!r}: lengths must be from 1 to {MAX_LENGTH} "
                             "characters, a range low to high")
        out.append((low, high))
    return tuple(out)


def parse_scheme(scheme: str | None, fixed_a: bool) -> str:
    """AABB, ABAB, XAXA, ...: letters A-Z, X free. --rhyme-with alone means AAAA."""
    if scheme is None:
        return "A" if fixed_a else FREE
    scheme = scheme.strip().upper()
    if not re.fullmatch(r"[A-Z]+", scheme):
        raise UsageError(f"--rhyme {scheme!r}: use letters A-Z (lines with the same letter "
                         "rhyme) and X (a line that need not)")
    if fixed_a and "A" not in scheme:
        raise UsageError(f"--rhyme-with sets the A lines' rhyme, but --rhyme {scheme!r} has no A")
    return scheme


def check_vocab(form: Form, vocab: Vocab) -> None:
    """Refuse a form this model cannot write: no newline, acrostic characters it does not
    know, a rhyme group none of its characters has."""
    if "\n" not in vocab.index:
        raise UsageError("this model was trained without newlines (--newlines space), so it "
                         "cannot write lines; sample with --length instead")
    for option, text in (("--acrostic", form.acrostic), ("--keywords", "".join(form.keywords))):
        missing = [c for c in dict.fromkeys(text or "") if c not in vocab.index]
        if missing:
            raise UsageError(f"{option}: {', '.join(map(repr, missing))} not in the model's "
                             "vocabulary")
    keys = {rhyme.char_key(c) for c in vocab.chars} - {None}
    if form.rhyme_with is not None and form.rhyme_with not in keys:
        raise UsageError(f"--rhyme-with: no character of the model's vocabulary is in the "
                         f"{form.rhyme_with} rhyme group")
    letters = set(form.scheme) - {FREE}
    has_words = any(c.isalpha() and not rhyme.is_han(c) for c in vocab.chars)
    if letters and not keys and not has_words:
        raise UsageError("--rhyme: no character of the model's vocabulary has a rhyme")
