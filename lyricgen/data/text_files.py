"""Text from files: a .txt file, a .zip (its .txt members in name order) or a folder of .txt
files, as one UTF-8 string.

Everything read here may come from anywhere, so every read is bounded: only regular files are
opened (a FIFO or a device would block or never end), and text is read in chunks up to a cap
(no more than `--max-chars` needs, and MAX_CORPUS_BYTES at most).
"""

from __future__ import annotations

import codecs
import os
import stat
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

from lyricgen.errors import LyricgenError

# The most UTF-8 text a corpus may hold when --max-chars does not limit it: far above any lyrics
# collection, low enough that the reading (about three times this in memory) fits on a laptop.
# LYRICGEN_MAX_CORPUS_BYTES overrides it.
MAX_CORPUS_BYTES = 1 << 30
CHUNK_BYTES = 1 << 20


def read_text(path: Path, max_chars: int | None = None) -> str:
    """A .txt file, a .zip (its .txt members in name order) or a folder of .txt files (sorted,
    recursively), as one UTF-8 string with BOMs removed and line endings turned into \\n.
    With `max_chars`, reading stops once that many characters are there: the result starts
    with the text's first `max_chars` characters and may hold a few more."""
    try:
        return _read_text(path, _Text(corpus_byte_limit(), max_chars))
    except OSError as e:
        raise LyricgenError(f"cannot read {e.filename or path}: {e.strerror or e}") from None


def corpus_byte_limit() -> int:
    """MAX_CORPUS_BYTES, or LYRICGEN_MAX_CORPUS_BYTES when set."""
    raw = os.environ.get("LYRICGEN_MAX_CORPUS_BYTES", "").strip()
    if not raw:
        return MAX_CORPUS_BYTES
    if not raw.isdigit() or int(raw) < 1:
        raise LyricgenError(f"LYRICGEN_MAX_CORPUS_BYTES must be a positive whole number of "
                            f"bytes, not {raw!r}")
    return int(raw)


def _read_text(path: Path, text: _Text) -> str:
    if stat.S_ISDIR(os.stat(path).st_mode):
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() == ".txt" and p.is_file())
        if not files:
            raise LyricgenError(f"{path} holds no .txt files")
        for file in files:
            if text.enough:
                break
            with open_regular(file) as f:
                text.add(str(file), f, os.fstat(f.fileno()).st_size)
    else:
        with open_regular(path) as f:
            if zipfile.is_zipfile(f) or path.suffix.lower() == ".zip":  # a .zip that is not
                _add_zip_members(path, f, text)                          # one is damaged
            else:
                f.seek(0)
                text.add(str(path), f, os.fstat(f.fileno()).st_size)
    return text.result(path)


CORPUS = "give a .txt file, a .zip or a folder of .txt files"


def open_regular(path: Path, advice: str = CORPUS) -> BinaryIO:
    """`path` opened for binary reading, provided it is a regular file (else an error ending
    in `advice`). Checked before opening, since opening a FIFO waits for a writer; opened
    non-blocking and checked again, in case something else took its place in between."""
    _require_regular(path, os.stat(path), advice)
    nonblock = getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, os.O_RDONLY | nonblock | getattr(os, "O_BINARY", 0))
    try:
        _require_regular(path, os.fstat(fd), advice)
        if nonblock:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


_KINDS = [(stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket")]


def _require_regular(path: Path, st: os.stat_result, advice: str) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    kind = next((name for test, name in _KINDS if test(st.st_mode)), "a special file")
    raise LyricgenError(f"{path} is {kind}, not a regular file: {advice}")


def _add_zip_members(path: Path, file: BinaryIO, text: _Text) -> None:
    try:
        with zipfile.ZipFile(file) as z:
            members = sorted((m for m in z.infolist() if m.filename.lower().endswith(".txt")
                              and not m.filename.startswith("__MACOSX/")),
                             key=lambda m: m.filename)
            if not members:
                raise LyricgenError(f"{path} is a zip without any .txt member")
            # The sizes the zip claims: a bomb that admits its size is refused unread.
            text.check_size(str(path), sum(m.file_size for m in members))
            for member in members:
                if text.enough:
                    break
                with z.open(member) as f:  # read in chunks: the claimed size may be a lie
                    text.add(f"{path}:{member.filename}", f, member.file_size)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError) as e:
        raise LyricgenError(f"{path} is a damaged zip file ({e})") from None
    except (RuntimeError, NotImplementedError) as e:  # encrypted, or an unknown compression
        raise LyricgenError(f"{path} cannot be read: {e}; unpack it and pass the .txt") from None


class _Text:
    """The text of a corpus's sources in order, read in chunks, decoded and normalised as it
    comes: at most `limit` bytes in all, and not much more than `max_chars` needs (a character
    is at most 4 bytes of UTF-8)."""

    def __init__(self, limit: int, max_chars: int | None):
        self.limit, self.max_chars = limit, max_chars
        self.parts: list[str] = []
        self.chars = self.bytes = self.sources = 0

    @property
    def enough(self) -> bool:
        return self.max_chars is not None and self.chars >= self.max_chars

    def check_size(self, name: str, size: int) -> None:
        """Refuse `size` more bytes before reading them, when all of them would be needed."""
        if self.max_chars is None and self.bytes + size > self.limit:
            raise self._too_large(name)

    def add(self, name: str, stream: BinaryIO, size: int) -> None:
        """Append the text of `stream` (`size` bytes, as far as anyone says)."""
        self.check_size(name, size)
        if self.sources:
            self._append("\n")
        self.sources += 1
        decoder = codecs.getincrementaldecoder("utf-8")()
        offset, started, carry = 0, False, ""
        while not self.enough:
            block = stream.read(self._wanted())
            if not block:
                break
            if self.bytes + len(block) > self.limit:
                raise self._too_large(name)
            self.bytes += len(block)
            if b"\x00" in block:
                if _utf16(block, offset):
                    raise LyricgenError(f"{name} is UTF-16 text: convert it to UTF-8 (e.g. "
                                        "iconv -f UTF-16 -t UTF-8)")
                raise LyricgenError(f"{name} looks binary (it contains NUL bytes); give a UTF-8 "
                                    "text file")
            piece = _decode(name, decoder, block, offset)
            offset += len(block)
            if piece and not started:
                piece, started = piece.removeprefix("\ufeff"), True
            # A \r at a block's end may be half of a \r\n: it waits for the next block.
            piece, carry = _split_cr(carry + piece)
            self._append(_newlines(piece))
        if not self.enough:  # the end of the source: what the decoder still holds must decode
            piece = _decode(name, decoder, b"", offset, final=True)
            carry += piece.removeprefix("\ufeff") if not started else piece
        self._append(_newlines(carry))

    def result(self, path: Path) -> str:
        text = "".join(self.parts)
        # Cut short by --max-chars, the text is the start of a longer one: kept as it is.
        if not self.enough and not text.strip():
            raise LyricgenError(f"{path} holds no text (it is empty or only whitespace)")
        return text

    def _wanted(self) -> int:
        want = CHUNK_BYTES
        if self.max_chars is not None:
            want = min(want, 4 * (self.max_chars - self.chars) + 8)
        return min(want, self.limit - self.bytes + 1)  # one byte over the cap tells it is over

    def _append(self, piece: str) -> None:
        if piece:
            self.parts.append(piece)
            self.chars += len(piece)

    def _too_large(self, name: str) -> LyricgenError:
        return LyricgenError(
            f"{name} holds more than {self.limit:,} bytes of text, the limit for a corpus: pass "
            "--max-chars N to use its first N characters, or raise LYRICGEN_MAX_CORPUS_BYTES")


def _decode(name: str, decoder: codecs.IncrementalDecoder, block: bytes, offset: int,
            final: bool = False) -> str:
    pending = len(decoder.getstate()[0])  # bytes of an earlier block not decoded yet
    try:
        return decoder.decode(block, final)
    except UnicodeDecodeError as e:
        raise LyricgenError(f"{name} is not UTF-8 text (bad byte at offset "
                            f"{offset - pending + e.start}); convert it to UTF-8 first") from None


def _utf16(block: bytes, offset: int) -> bool:
    """Whether `block` (at `offset` in its file) reads as UTF-16: a byte-order mark, or NUL
    bytes in most of one parity of positions (the high byte of ASCII and Latin text)."""
    if offset == 0 and block[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return True
    pairs = len(block) // 2
    return pairs > 0 and max(block[0::2].count(0), block[1::2].count(0)) > 0.4 * pairs


def _split_cr(text: str) -> tuple[str, str]:
    return (text[:-1], "\r") if text.endswith("\r") else (text, "")


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")
