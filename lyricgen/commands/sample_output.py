"""How `sample`'s text reaches a terminal or a pipe: streamed a line (or a character) at a
time, each line followed by its mark when it copies the corpus."""

from __future__ import annotations

from collections.abc import Callable

from lyricgen.config import SampleConfig
from lyricgen.copies import DEFAULT_RUN, CopyIndex
from lyricgen.songs.songwriter import Line

Stream = Callable[..., None]  # stream(text) writes text; stream(mark, end=True) ends a line


Marker = Callable[[str], str]  # a line's text -> what follows it on the terminal


def copy_marker(cfg: SampleConfig, copies: CopyIndex | None, mark: bool) -> Marker:
    """With `mark`, when copies are allowed (--max-copy 0), a line that holds a run of
    DEFAULT_RUN or more characters of the corpus is followed by a dim note saying so."""
    if not mark or copies is None or cfg.max_copy != 0:
        return lambda line: ""

    def marker(line: str) -> str:
        run = copies.longest(line)
        return f"  \x1b[2m(copied: {run} characters)\x1b[0m" if run >= DEFAULT_RUN else ""

    return marker


class LineStream:
    """Text streamed as it is written, a character or a line at a time, each line followed by
    its mark; with `chars`, no more than that many characters after `prefix`."""

    def __init__(self, stream: Stream, marker: Marker, prefix: str, chars: int | None = None):
        self.stream, self.marker, self.current, self.first = stream, marker, "", True
        self.left = None if chars is None else len(prefix) + chars
        self.write(prefix)

    def line(self, line: Line) -> None:
        """A whole line (the first holds the prefix, already written)."""
        self.write(line.text[len(self.current):] if self.first else "\n" + line.text)
        self.first = False

    def write(self, text: str) -> None:
        if self.left is not None:
            text, self.left = text[:self.left], max(self.left - len(text), 0)
        for char in text:
            if char == "\n":
                self.stream(self.marker(self.current), end=True)
                self.current = ""
            else:
                self.stream(char)
                self.current += char

    def end(self) -> None:
        """The last line's end, and its mark."""
        self.stream(self.marker(self.current), end=True)
