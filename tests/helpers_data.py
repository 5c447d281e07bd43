"""Helpers shared by the data-layer tests: synthetic corpora, zip files and a local HTTP mirror.

Every corpus here is generated from a fixed list of characters written for the tests; no real
lyrics are used anywhere.
"""

from __future__ import annotations

import errno
import hashlib
import http.server
import os
import random
import socket
import struct
import threading
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest

from lyricgen.data import datasets

HAN = "春夏秋冬日月星山川河海风花雪雨云天地人心梦光影歌声远近你我他的是不了"
ASCII = "abcdefghijklmnopqrstuvwxyzXYZ0123456789 ,.!?'"
ALPHABET = HAN + ASCII


def make_text(seed: int, lines: int = 40, alphabet: str = ALPHABET) -> str:
    """`lines` random lines over `alphabet`, each ending in \\n."""
    rng = random.Random(seed)
    rows = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24))) for _ in range(lines)]
    return "\n".join(rows) + "\n"


def write_zip(path: Path, members: dict[str, str | bytes],
              compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """A zip at `path` with `members` (str members stored as UTF-8) in the given order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, content in members.items():
            z.writestr(name, content.encode("utf-8") if isinstance(content, str) else content)
    return path


def claim_size(path: Path, size: int) -> Path:
    """Make the zip at `path` (one member) claim `size` uncompressed bytes for its member, in
    the local header and the central directory, as a zip bomb's forged header would."""
    raw = bytearray(path.read_bytes())
    struct.pack_into("<I", raw, raw.find(b"PK\x03\x04") + 22, size)
    struct.pack_into("<I", raw, raw.find(b"PK\x01\x02") + 24, size)
    path.write_bytes(bytes(raw))
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# A scripted answer for one path of a Mirror: it gets the request handler and an event set
# when the mirror shuts down (a slow answer must stop then).
Route = Callable[[http.server.BaseHTTPRequestHandler, threading.Event], None]


class Mirror:
    """An HTTP server on 127.0.0.1 (a free port) serving the files of `root`, and for the paths
    in `routes` their scripted answers; `requests` lists the paths asked for, in order."""

    def __init__(self, root: Path, routes: dict[str, Route] | None = None):
        self.root = root
        self.routes = routes or {}
        self.requests: list[str] = []
        self.stopping = threading.Event()
        mirror = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                route = mirror.routes.get(self.path)
                if route is None:
                    return super().do_GET()
                try:
                    route(self, mirror.stopping)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up
                    pass

            def log_request(self, code="-", size="-"):  # once per answered request
                mirror.requests.append(self.path)

            def log_message(self, format, *args):  # quiet
                pass

        root.mkdir(parents=True, exist_ok=True)
        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)

    def __enter__(self) -> Mirror:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def trickle(body: bytes, every: float) -> Route:
    """Announce `body`, then send it one byte per `every` seconds."""
    def answer(handler, stopping: threading.Event) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        for i in range(len(body)):
            handler.wfile.write(body[i:i + 1])
            handler.wfile.flush()
            if stopping.wait(every):
                return
    return answer


def redirect(location: str) -> Route:
    """A 302 to `location` (a path: pointing it at itself makes a loop)."""
    def answer(handler, stopping: threading.Event) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return answer


def stream(size: int, announce: int | None = None, sent: list[int] | None = None) -> Route:
    """A body of `size` bytes sent in 64 KiB blocks, announced as `announce` bytes (no
    Content-Length when None; the body then ends with the connection); what was sent so far is
    kept in `sent[0]`."""
    sent = sent if sent is not None else [0]

    def answer(handler, stopping: threading.Event) -> None:
        handler.send_response(200)
        if announce is not None:
            handler.send_header("Content-Length", str(announce))
        handler.end_headers()
        block = b"x" * (1 << 16)
        while sent[0] < size and not stopping.is_set():
            n = min(len(block), size - sent[0])
            handler.wfile.write(block[:n])
            sent[0] += n
    return answer


class DiskFull:
    """A stand-in for a file object whose writes fail as on a full disk once `room` bytes are
    written (os.fdopen replaced by `full_disk(room)` hands these out)."""

    def __init__(self, file, room: int):
        self.file, self.room = file, room

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self) -> DiskFull:
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()


def full_disk(room: int) -> Callable:
    """os.fdopen, whose files fill up after `room` bytes (monkeypatch it over os.fdopen)."""
    real = os.fdopen

    def fdopen(fd, *args, **kwargs):
        return DiskFull(real(fd, *args, **kwargs), room)
    return fdopen


@contextmanager
def dead_url() -> Iterator[str]:
    """A URL on 127.0.0.1 whose port is bound but not listening: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def use_cache(monkeypatch: pytest.MonkeyPatch, data_dir: Path, mirror_url: str) -> None:
    """Point the download at `mirror_url` and the cache at `data_dir`, with no proxy between."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY", "LYRICGEN_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LYRICGEN_DATA_DIR", str(data_dir))
    monkeypatch.setenv("LYRICGEN_MIRROR", mirror_url)


def register(monkeypatch: pytest.MonkeyPatch, filename: str, sha256: str,
             name: str = "jaychou", size: int = 1 << 20) -> datasets.Dataset:
    """Replace the registry entry `name` by a dataset with the given file name, checksum and
    size cap (bytes); its own URL points nowhere, so only LYRICGEN_MIRROR can serve it."""
    dataset = datasets.Dataset(name=name, url=f"http://127.0.0.1:9/{filename}", sha256=sha256,
                             filename=filename, size=size)
    monkeypatch.setitem(datasets.DATASETS, name, dataset)
    return dataset


def files_under(folder: Path) -> list[Path]:
    """Every file (hidden ones included) below `folder`; [] when it does not exist."""
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
