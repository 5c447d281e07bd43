"""The dataset registry (name -> URL, sha256, size, cache file) and its verified download:
to a temporary file, within a deadline and the registered size, checked against the sha256,
then renamed into place; a damaged cached file is fetched again."""

from __future__ import annotations

import hashlib
import http.client
import os
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from lyricgen.data.cleaning import CREDITS, Cleaning
from lyricgen.errors import LyricgenError, is_terminal
from lyricgen.data.text_files import CHUNK_BYTES, open_regular

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
    cleaning: Cleaning = Cleaning()  # what its text needs (the --script... options' defaults)


DATASETS = {
    "jaychou": Dataset(
        name="jaychou",
        # The file left d2l-zh's master branch in 2020, so the URL pins the v1.0.0 tag.
        url="https://raw.githubusercontent.com/d2l-ai/d2l-zh/v1.0.0/data/jaychou_lyrics.txt.zip",
        sha256="3cfedd7d174111cdad5a27eaffaa6a2432a2842cf2590a03dd8a97610ea07043",
        filename="jaychou_lyrics.txt.zip",
        size=52_607,
        # Mostly simplified with some traditional lines; full-width spaces; and title, artist
        # and credit lines ("周杰伦 安静", "曲周杰伦歌词提供再兴") among the lyrics.
        cleaning=Cleaning("simplified", True, CREDITS + "|周杰伦|杰伦"),
    ),
}


def registered(path: Path) -> Dataset | None:
    """The registered dataset whose file `path` is (same size and sha256), if any: a copy
    given by path gets the dataset's cleaning too."""
    try:
        size = os.stat(path).st_size
    except OSError:
        return None
    for dataset in DATASETS.values():
        if size == dataset.size and cache_damage(path, dataset) is None:
            return dataset
    return None


def data_dir() -> Path:
    return Path(os.environ.get("LYRICGEN_DATA_DIR") or "data")


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
        remove_stale_parts(target.parent, dataset)
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


def remove_stale_parts(folder: Path, dataset: Dataset) -> None:
    """Delete the .part files of downloads of `dataset` that a killed process left: any not
    written to for longer than a download may last (a live one is younger)."""
    for part in folder.glob(f".{dataset.filename}.*.part"):
        try:
            if time.time() - part.stat().st_mtime > DOWNLOAD_DEADLINE_S:
                part.unlink()
        except OSError:  # gone meanwhile, or not ours to remove: the download goes on
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
                  disable=not (progress and is_terminal(sys.stderr)), leave=False) as bar:
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
