"""Corpus reading (.txt / .zip / folder), normalisation, the train/val split, and the dataset
registry with its verified download.

Everything read here may come from anywhere, so every read is bounded: only regular files are
opened (a FIFO or a device would block or never end), text is read in chunks up to a cap (no
more than `--max-chars` needs, and MAX_CORPUS_BYTES at most), and a download has a deadline and
may not exceed the registered file's size.
"""

from __future__ import annotations

import codecs
import hashlib
import http.client
import os
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch

from lyricgen.config import DataConfig
from lyricgen.errors import LyricgenError
from lyricgen.fingerprint import line_hashes
from lyricgen.vocab import Vocab, build_vocab

# The most UTF-8 text a corpus may hold when --max-chars does not limit it: far above any lyrics
# collection, low enough that the reading (about three times this in memory) fits on a laptop.
# LYRICGEN_MAX_CORPUS_BYTES overrides it.
MAX_CORPUS_BYTES = 1 << 30
CHUNK_BYTES = 1 << 20
# A download's whole time, connecting included, and the longest wait for any one read.
DOWNLOAD_DEADLINE_S = 120.0
READ_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Dataset:
    name: str
    url: str
    sha256: str
    filename: str  # the cache file name, and the name fetched under LYRICGEN_MIRROR
    size: int  # bytes: a download that announces or sends more is refused at once


DATASETS = {
    "jaychou": Dataset(
        name="jaychou",
        # The file left d2l-zh's master branch in 2020, so the URL pins the v1.0.0 tag.
        url="https://raw.githubusercontent.com/d2l-ai/d2l-zh/v1.0.0/data/jaychou_lyrics.txt.zip",
        sha256="3cfedd7d174111cdad5a27eaffaa6a2432a2842cf2590a03dd8a97610ea07043",
        filename="jaychou_lyrics.txt.zip",
        size=52_607,
    ),
}


@dataclass
class Corpus:
    """A corpus encoded as ids; the validation part is the contiguous tail of the stream."""

    vocab: Vocab
    ids: torch.Tensor  # (N,) int16/int32
    num_train: int
    num_lines: int
    sha256: str  # of the normalised text, so a resumed run can tell that its corpus changed
    line_hashes: torch.Tensor  # fingerprint.line_hashes of the text (`sample --no-copy`)

    @property
    def train_ids(self) -> torch.Tensor:
        return self.ids[: self.num_train]

    @property
    def val_ids(self) -> torch.Tensor:
        return self.ids[self.num_train:]


def load_corpus(cfg: DataConfig, progress: bool = True) -> Corpus:
    path = resolve_data(cfg.data, progress)
    text = normalise(read_text(path, max_chars=cfg.max_chars), cfg)
    vocab, ids = build_vocab(text)
    num_val = int(len(text) * cfg.val_fraction)
    return Corpus(vocab, ids, len(text) - num_val, _count_lines(text),
                  hashlib.sha256(text.encode("utf-8")).hexdigest(), line_hashes(text))


def normalise(text: str, cfg: DataConfig) -> str:
    """Apply `--newlines` and `--max-chars` to text already read by `read_text`."""
    if cfg.newlines == "space":
        text = text.replace("\n", " ")
    if cfg.max_chars is not None:
        text = text[: cfg.max_chars]
    return text


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


def open_regular(path: Path) -> BinaryIO:
    """`path` opened for binary reading, provided it is a regular file. Checked before opening,
    since opening a FIFO waits for a writer; opened non-blocking and checked again, in case
    something else took its place in between."""
    _require_regular(path, os.stat(path))
    nonblock = getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, os.O_RDONLY | nonblock | getattr(os, "O_BINARY", 0))
    try:
        _require_regular(path, os.fstat(fd))
        if nonblock:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


_KINDS = [(stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket")]


def _require_regular(path: Path, st: os.stat_result) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    kind = next((name for test, name in _KINDS if test(st.st_mode)), "a special file")
    raise LyricgenError(f"{path} is {kind}, not a regular file: give a .txt file, a .zip or a "
                        "folder of .txt files")


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


def _split_cr(text: str) -> tuple[str, str]:
    return (text[:-1], "\r") if text.endswith("\r") else (text, "")


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _count_lines(text: str) -> int:
    return text.count("\n") + (0 if text.endswith("\n") else 1)


# --- the dataset registry and its download ---------------------------------------------------

def data_dir() -> Path:
    return Path(os.environ.get("LYRICGEN_DATA_DIR") or "data")


def resolve_data(spec: str, progress: bool = True) -> Path:
    """`--data`: an existing path, else a registry name (fetched into the cache when missing
    or damaged)."""
    path = Path(spec).expanduser()
    if path.exists():
        return path
    if spec in DATASETS:
        return fetch(DATASETS[spec], progress)
    raise LyricgenError(f"corpus not found: {spec} (give a .txt file, a .zip, a folder of .txt "
                        f"files, or a dataset name: {', '.join(DATASETS)})")


def fetch(dataset: Dataset, progress: bool = True) -> Path:
    """The cached file of `dataset`, trusted only when it matches the registered sha256;
    otherwise downloaded, verified and renamed into place. `progress` shows a bar, on a
    terminal only."""
    target = data_dir() / dataset.filename
    damage = cache_damage(target, dataset)
    if damage is None:
        return target
    mirror = os.environ.get("LYRICGEN_MIRROR")
    url = f"{mirror.rstrip('/')}/{dataset.filename}" if mirror else dataset.url
    try:
        _download_into(target, url, dataset, progress)
    except LyricgenError as e:
        if damage == MISSING:
            raise
        raise LyricgenError(f"the cached file {target} is damaged ({damage}) and fetching it "
                            f"again failed: {e}") from None
    return target


MISSING = "missing"


def cache_damage(target: Path, dataset: Dataset) -> str | None:
    """What is wrong with the cached copy of `dataset` (MISSING when there is none); None when
    it is the registered file."""
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return MISSING
    except OSError as e:
        raise LyricgenError(f"cannot read the cached file {target}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    size = f"{st.st_size:,} bytes where the registered file has {dataset.size:,}"
    if st.st_size > dataset.size:  # spares hashing a file of any size
        return size
    digest = hashlib.sha256()
    try:
        with open_regular(target) as f:
            while block := f.read(CHUNK_BYTES):
                digest.update(block)
    except OSError as e:
        raise LyricgenError(f"cannot read the cached file {target}: {e.strerror}") from None
    if digest.hexdigest() == dataset.sha256:
        return None
    return size if st.st_size != dataset.size else "its sha256 is not the registered one"


def _download_into(target: Path, url: str, dataset: Dataset, progress: bool) -> None:
    """Download to a temporary .part file beside `target`, verify, rename into place; the .part
    is gone afterwards, whatever happened."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{dataset.filename}.",
                                   suffix=".part")
    except OSError as e:
        raise LyricgenError(f"cannot create a file in the data folder {target.parent}: "
                            f"{e.strerror}") from None
    part = Path(tmp)
    try:
        try:
            with os.fdopen(fd, "wb") as out:
                digest = _download(url, out, dataset, progress)
                out.flush()
                os.fsync(out.fileno())
        except OSError as e:  # network errors arrive as LyricgenError: this is the local disk
            raise LyricgenError(f"could not write {part}: {e.strerror or e}; nothing was saved "
                                "(free some space, or set LYRICGEN_DATA_DIR to another folder)"
                                ) from None
        if digest != dataset.sha256:
            raise LyricgenError(f"checksum mismatch for {url}: expected sha256 {dataset.sha256}, "
                                f"got {digest}; nothing was saved")
        try:
            os.replace(part, target)
        except OSError as e:
            raise LyricgenError(f"could not save {target}: {e.strerror or e}") from None
    finally:
        try:
            part.unlink()
        except FileNotFoundError:  # renamed into place
            pass


def _download(url: str, out: BinaryIO, dataset: Dataset, progress: bool) -> str:
    """The body of `url` written to `out`, within DOWNLOAD_DEADLINE_S and `dataset.size`; its
    sha256. Network failures raise LyricgenError; `out`'s own OSError passes through."""
    from tqdm import tqdm

    deadline = time.monotonic() + DOWNLOAD_DEADLINE_S
    digest, received = hashlib.sha256(), 0
    with _open_url(url, deadline) as response:
        total = _announced_size(response)
        if total is not None and total > dataset.size:
            raise _not_the_file(url, dataset, f"it announces {total:,} bytes")
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"fetch {dataset.filename}",
                  disable=not (progress and _is_terminal(sys.stderr)), leave=False) as bar:
            while block := _read(response, url, deadline):
                received += len(block)
                if received > dataset.size:
                    raise _not_the_file(url, dataset, f"it sent more than {dataset.size:,} bytes")
                out.write(block)
                digest.update(block)
                bar.update(len(block))
    return digest.hexdigest()


def _open_url(url: str, deadline: float) -> http.client.HTTPResponse:
    try:
        return urllib.request.urlopen(url, timeout=_time_left(url, deadline))
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        raise _network_error(url, e) from None


def _read(response: http.client.HTTPResponse, url: str, deadline: float) -> bytes:
    """The next bytes of the body, whatever has arrived (read1), so that a server trickling
    bytes cannot stretch one read; none once the deadline has passed."""
    try:
        # http.client keeps the socket there; the per-read timeout shrinks to the deadline.
        sock = getattr(getattr(response.fp, "raw", None), "_sock", None)
        if sock is not None:
            sock.settimeout(_time_left(url, deadline))
        return response.read1(1 << 16)
    except (http.client.HTTPException, OSError, ValueError) as e:
        if time.monotonic() >= deadline:
            raise _too_slow(url) from None
        raise _network_error(url, e) from None


def _time_left(url: str, deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _too_slow(url)
    return min(READ_TIMEOUT_S, left)


def _announced_size(response: http.client.HTTPResponse) -> int | None:
    value = (response.headers.get("Content-Length") or "").strip()
    return int(value) if value.isdigit() else None


def _network_error(url: str, error: BaseException) -> LyricgenError:
    reason = getattr(error, "reason", None) or error
    reason = " ".join(str(reason).split()) or type(error).__name__  # urllib's are multi-line
    return LyricgenError(
        f"could not download {url} ({reason}). Without network, pass --data PATH to a local "
        "copy, or set LYRICGEN_MIRROR to a URL prefix that serves the file")


def _too_slow(url: str) -> LyricgenError:
    return _network_error(url, f"not done within {DOWNLOAD_DEADLINE_S:g} s; nothing was saved")


def _not_the_file(url: str, dataset: Dataset, what: str) -> LyricgenError:
    return LyricgenError(
        f"{url} is not the registered {dataset.filename} ({what}; the file has "
        f"{dataset.size:,}); nothing was saved. Check LYRICGEN_MIRROR, or pass --data PATH to "
        "a local copy")


def _is_terminal(stream) -> bool:
    """Progress bars only for a terminal: in logs they are noise."""
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # a stand-in stream, or one already closed
        return False


def describe(corpus: Corpus, top: int = 10) -> dict:
    """The figures `lyricgen data info` prints."""
    order = sorted(range(len(corpus.vocab)), key=lambda i: -corpus.vocab.counts[i])[:top]
    return {
        "chars": len(corpus.ids),
        "vocab_size": len(corpus.vocab),
        "lines": corpus.num_lines,
        "train_chars": corpus.num_train,
        "val_chars": len(corpus.ids) - corpus.num_train,
        "most_common": [[corpus.vocab.chars[i], corpus.vocab.counts[i]] for i in order],
        "sha256": corpus.sha256,
    }
