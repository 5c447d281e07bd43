"""Helpers shared by the data-layer tests: synthetic corpora, zip files and a local HTTP mirror.

Every corpus here is generated from a fixed list of characters written for the tests; no real
lyrics are used anywhere.
"""

from __future__ import annotations

import hashlib
import http.server
import random
import socket
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest

from lyricgen import corpus

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


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Mirror:
    """An HTTP server on 127.0.0.1 (a free port) serving the files of `root`; `requests` lists
    the paths asked for, in order."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[str] = []
        mirror = self

        class Handler(http.server.SimpleHTTPRequestHandler):
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
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


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
             name: str = "jaychou") -> corpus.Dataset:
    """Replace the registry entry `name` by a dataset with the given file name and checksum;
    its own URL points nowhere, so only LYRICGEN_MIRROR can serve it."""
    dataset = corpus.Dataset(name=name, url=f"http://127.0.0.1:9/{filename}", sha256=sha256,
                             filename=filename)
    monkeypatch.setitem(corpus.DATASETS, name, dataset)
    return dataset


def files_under(folder: Path) -> list[Path]:
    """Every file (hidden ones included) below `folder`; [] when it does not exist."""
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
