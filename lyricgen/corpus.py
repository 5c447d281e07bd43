"""Corpus reading (.txt / .zip / folder), normalisation, the train/val split, and the dataset
registry with its verified download."""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from lyricgen.config import DataConfig
from lyricgen.errors import LyricgenError
from lyricgen.fingerprint import line_hashes
from lyricgen.vocab import Vocab, build_vocab


@dataclass(frozen=True)
class Dataset:
    name: str
    url: str
    sha256: str
    filename: str  # the cache file name, and the name fetched under LYRICGEN_MIRROR


DATASETS = {
    "jaychou": Dataset(
        name="jaychou",
        # The file left d2l-zh's master branch in 2020, so the URL pins the v1.0.0 tag.
        url="https://raw.githubusercontent.com/d2l-ai/d2l-zh/v1.0.0/data/jaychou_lyrics.txt.zip",
        sha256="3cfedd7d174111cdad5a27eaffaa6a2432a2842cf2590a03dd8a97610ea07043",
        filename="jaychou_lyrics.txt.zip",
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
    text = normalise(read_text(resolve_data(cfg.data, progress)), cfg)
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


def read_text(path: Path) -> str:
    """A .txt file, a .zip (its .txt members in name order) or a folder of .txt files (sorted,
    recursively), as one UTF-8 string with BOMs removed and line endings turned into \\n."""
    try:
        return _read_text(path)
    except OSError as e:
        raise LyricgenError(f"cannot read {e.filename or path}: {e.strerror}") from None


def _read_text(path: Path) -> str:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() == ".txt" and p.is_file())
        if not files:
            raise LyricgenError(f"{path} holds no .txt files")
        parts = [(str(p), p.read_bytes()) for p in files]
    elif zipfile.is_zipfile(path) or path.suffix.lower() == ".zip":  # a .zip that is not one
        parts = _zip_members(path)                                    # is a damaged zip
    else:
        parts = [(str(path), path.read_bytes())]
    text = "\n".join(_decode(name, raw) for name, raw in parts)
    if not text.strip():
        raise LyricgenError(f"{path} holds no text (it is empty or only whitespace)")
    return text


def _zip_members(path: Path) -> list[tuple[str, bytes]]:
    try:
        with zipfile.ZipFile(path) as z:
            names = sorted(n for n in z.namelist()
                           if n.lower().endswith(".txt") and not n.startswith("__MACOSX/"))
            if not names:
                raise LyricgenError(f"{path} is a zip without any .txt member")
            return [(f"{path}:{n}", z.read(n)) for n in names]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError) as e:
        raise LyricgenError(f"{path} is a damaged zip file ({e})") from None
    except (RuntimeError, NotImplementedError) as e:  # encrypted, or an unknown compression
        raise LyricgenError(f"{path} cannot be read: {e}; unpack it and pass the .txt") from None


def _decode(name: str, raw: bytes) -> str:
    if b"\x00" in raw:
        raise LyricgenError(f"{name} looks binary (it contains NUL bytes); give a UTF-8 text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LyricgenError(f"{name} is not UTF-8 text (bad byte at offset {e.start}); "
                            "convert it to UTF-8 first") from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def _count_lines(text: str) -> int:
    return text.count("\n") + (0 if text.endswith("\n") else 1)


# --- the dataset registry and its download ---------------------------------------------------

def data_dir() -> Path:
    return Path(os.environ.get("LYRICGEN_DATA_DIR") or "data")


def resolve_data(spec: str, progress: bool = True) -> Path:
    """`--data`: an existing path, else a registry name (fetched into the cache when missing)."""
    path = Path(spec).expanduser()
    if path.exists():
        return path
    if spec in DATASETS:
        return fetch(DATASETS[spec], progress)
    raise LyricgenError(f"corpus not found: {spec} (give a .txt file, a .zip, a folder of .txt "
                        f"files, or a dataset name: {', '.join(DATASETS)})")


def fetch(dataset: Dataset, progress: bool = True) -> Path:
    """The cached file of `dataset`; downloaded, verified and renamed into place when missing."""
    target = data_dir() / dataset.filename
    if target.exists():
        return target
    mirror = os.environ.get("LYRICGEN_MIRROR")
    url = f"{mirror.rstrip('/')}/{dataset.filename}" if mirror else dataset.url
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LyricgenError(
            f"cannot create the data folder {target.parent}: {e.strerror}") from None
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{dataset.filename}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _download(url, out, progress, dataset.filename)
            out.flush()
            os.fsync(out.fileno())
        if digest != dataset.sha256:
            raise LyricgenError(f"checksum mismatch for {url}: expected sha256 {dataset.sha256}, "
                                f"got {digest}; nothing was saved")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _download(url: str, out, progress: bool, label: str) -> str:
    from tqdm import tqdm

    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"fetch {label}",
                      disable=not progress, leave=False) as bar:
                while block := response.read(1 << 16):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise LyricgenError(
            f"could not download {url} ({reason}). Without network, pass --data PATH to a local "
            "copy, or set LYRICGEN_MIRROR to a URL prefix that serves the file") from None
    return digest.hexdigest()


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

