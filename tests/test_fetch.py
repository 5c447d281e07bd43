"""The verified download of a registered dataset, against an HTTP server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers_data import (Mirror, dead_url, files_under, make_text, register, sha256_of,
                          use_cache, write_zip)
from lyricgen import corpus
from lyricgen.config import DataConfig
from lyricgen.errors import LyricgenError

FILENAME = "songs.txt.zip"


@pytest.fixture
def text() -> str:
    return make_text(seed=40, lines=60)


@pytest.fixture
def mirror(tmp_path, text):
    """A local mirror serving FILENAME, a zip the test built."""
    write_zip(tmp_path / "served" / FILENAME, {"songs.txt": text})
    with Mirror(tmp_path / "served") as server:
        yield server


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache" / "nested"  # does not exist yet: fetch creates it


def test_good_file_is_stored_verified_and_then_cached(monkeypatch, mirror, cache, text):
    served = mirror.root / FILENAME
    use_cache(monkeypatch, cache, mirror.url)
    dataset = register(monkeypatch, FILENAME, sha256_of(served))

    path = corpus.fetch(dataset, progress=False)
    assert path == cache / FILENAME
    assert path.read_bytes() == served.read_bytes()
    assert files_under(cache) == [path]  # no .part file left behind
    assert mirror.requests == [f"/{FILENAME}"]

    assert corpus.fetch(dataset, progress=False) == path
    assert corpus.resolve_data("jaychou", progress=False) == path
    loaded = corpus.load_corpus(DataConfig(data="jaychou", val_fraction=0.0), progress=False)
    assert loaded.vocab.decode(loaded.ids.tolist()) == text
    assert mirror.requests == [f"/{FILENAME}"]  # everything after the first call came from cache


def test_wrong_checksum_keeps_nothing(monkeypatch, mirror, cache):
    use_cache(monkeypatch, cache, mirror.url)
    dataset = register(monkeypatch, FILENAME, "0" * 64)
    with pytest.raises(LyricgenError, match="checksum") as info:
        corpus.fetch(dataset, progress=False)
    assert sha256_of(mirror.root / FILENAME) in str(info.value)  # what it got
    assert "0" * 64 in str(info.value)  # what it expected
    assert files_under(cache) == []


def assert_download_error(dataset, cache: Path) -> None:
    with pytest.raises(LyricgenError) as info:
        corpus.fetch(dataset, progress=False)
    message = str(info.value)
    assert "--data" in message and "LYRICGEN_MIRROR" in message
    assert dataset.filename in message  # names the URL it tried
    assert files_under(cache) == []


def test_server_down(monkeypatch, cache):
    with dead_url() as url:
        use_cache(monkeypatch, cache, url)
        assert_download_error(register(monkeypatch, FILENAME, "0" * 64), cache)


def test_http_404(monkeypatch, tmp_path, cache):
    with Mirror(tmp_path / "empty") as server:
        use_cache(monkeypatch, cache, server.url)
        assert_download_error(register(monkeypatch, FILENAME, "0" * 64), cache)
        assert server.requests == [f"/{FILENAME}"]


def test_mirror_url_may_end_with_a_slash(monkeypatch, mirror, cache):
    use_cache(monkeypatch, cache, mirror.url + "/")
    dataset = register(monkeypatch, FILENAME, sha256_of(mirror.root / FILENAME))
    assert corpus.fetch(dataset, progress=False).read_bytes() == \
        (mirror.root / FILENAME).read_bytes()
    assert mirror.requests == [f"/{FILENAME}"]


def no_fetch(*args, **kwargs):
    raise AssertionError("fetch must not be called")


def test_resolve_data_prefers_an_existing_path(monkeypatch, tmp_path):
    monkeypatch.setattr(corpus, "fetch", no_fetch)
    file = tmp_path / "mine.txt"
    file.write_text("春天\n", encoding="utf-8")
    assert corpus.resolve_data(str(file)) == file
    monkeypatch.chdir(tmp_path)
    Path("jaychou").write_text("秋天\n", encoding="utf-8")  # a file named like a dataset wins
    assert corpus.resolve_data("jaychou") == Path("jaychou")


def test_resolve_data_unknown_name(monkeypatch, tmp_path):
    monkeypatch.setattr(corpus, "fetch", no_fetch)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LyricgenError, match="not found: no-such-corpus") as info:
        corpus.resolve_data("no-such-corpus")
    assert "jaychou" in str(info.value)  # lists the dataset names it knows
