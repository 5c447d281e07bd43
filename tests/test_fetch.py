"""The verified download of a registered dataset, against an HTTP server on 127.0.0.1."""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

import pytest

from helpers_data import (Mirror, dead_url, files_under, full_disk, make_text, redirect,
                          register, sha256_of, stream, trickle, use_cache, write_zip)
from lyricgen.data import corpus, datasets
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

    path = datasets.fetch(dataset, progress=False)
    assert path == cache / FILENAME
    assert path.read_bytes() == served.read_bytes()
    assert files_under(cache) == [path]  # no .part file left behind
    assert mirror.requests == [f"/{FILENAME}"]

    assert datasets.fetch(dataset, progress=False) == path
    assert corpus.resolve_data("jaychou", progress=False) == path
    loaded = corpus.load_corpus(DataConfig(data="jaychou", val_fraction=0.0), progress=False)
    assert loaded.vocab.decode(loaded.ids.tolist()) == text
    assert mirror.requests == [f"/{FILENAME}"]  # everything after the first call came from cache


def test_a_killed_download_s_part_file_is_removed_by_the_next_fetch(monkeypatch, mirror, cache):
    """A SIGKILL leaves its .part file; the next fetch removes it once no download could still
    be writing it, and leaves a younger one (another fetch's) alone."""
    use_cache(monkeypatch, cache, mirror.url)
    dataset = register(monkeypatch, FILENAME, sha256_of(mirror.root / FILENAME))
    cache.mkdir(parents=True)
    stale, young = cache / f".{FILENAME}.dead1.part", cache / f".{FILENAME}.live2.part"
    stale.write_bytes(b"half a download")
    young.write_bytes(b"a download going on")
    old = time.time() - datasets.DOWNLOAD_DEADLINE_S - 60
    os.utime(stale, (old, old))
    path = datasets.fetch(dataset, progress=False)
    assert files_under(cache) == sorted([path, young])


def test_wrong_checksum_keeps_nothing(monkeypatch, mirror, cache):
    use_cache(monkeypatch, cache, mirror.url)
    dataset = register(monkeypatch, FILENAME, "0" * 64)
    with pytest.raises(LyricgenError, match="checksum") as info:
        datasets.fetch(dataset, progress=False)
    assert sha256_of(mirror.root / FILENAME) in str(info.value)  # what it got
    assert "0" * 64 in str(info.value)  # what it expected
    assert files_under(cache) == []


def assert_download_error(dataset, cache: Path) -> None:
    with pytest.raises(LyricgenError) as info:
        datasets.fetch(dataset, progress=False)
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
    assert datasets.fetch(dataset, progress=False).read_bytes() == \
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


# --- bounded downloads and a verified cache (issue 18) -----------------------------------------

def served_dataset(monkeypatch, mirror, cache, **extra) -> datasets.Dataset:
    """The registry entry for the file `mirror` serves, with the cache at `cache`."""
    served = mirror.root / FILENAME
    use_cache(monkeypatch, cache, mirror.url)
    return register(monkeypatch, FILENAME, sha256_of(served), size=served.stat().st_size,
                    **extra)


def refused(dataset, cache: Path, *phrases: str, seconds: float = 5.0) -> str:
    """fetch's error, which must come within `seconds`, be one line holding `phrases`, and
    leave nothing in the cache."""
    start = time.monotonic()
    with pytest.raises(LyricgenError) as info:
        datasets.fetch(dataset, progress=False)
    assert time.monotonic() - start < seconds
    message = str(info.value)
    assert "\n" not in message
    for phrase in phrases:
        assert phrase in message, message
    assert files_under(cache) == []
    return message


@pytest.mark.parametrize("every", [0.05, 30.0])  # a byte now and then; one byte, then silence
def test_a_trickling_mirror_meets_the_deadline(monkeypatch, tmp_path, cache, every):
    monkeypatch.setattr(datasets, "DOWNLOAD_DEADLINE_S", 0.5)
    with Mirror(tmp_path / "served", {f"/{FILENAME}": trickle(b"x" * 1000, every)}) as mirror:
        use_cache(monkeypatch, cache, mirror.url)
        dataset = register(monkeypatch, FILENAME, "0" * 64, size=1000)
        refused(dataset, cache, "not done within 0.5 s", FILENAME, "--data", "LYRICGEN_MIRROR",
                seconds=3)


def test_a_redirect_loop_is_one_line(monkeypatch, tmp_path, cache):
    with Mirror(tmp_path / "served", {f"/{FILENAME}": redirect(f"/{FILENAME}")}) as mirror:
        use_cache(monkeypatch, cache, mirror.url)
        refused(register(monkeypatch, FILENAME, "0" * 64), cache, "redirect", "infinite loop",
                "--data", "LYRICGEN_MIRROR")


def test_an_oversized_body_is_refused_as_it_arrives(monkeypatch, tmp_path, cache):
    sent = [0]
    body = stream(64 << 20, sent=sent)  # 64 MB, no Content-Length: the size shows as it comes
    with Mirror(tmp_path / "served", {f"/{FILENAME}": body}) as mirror:
        use_cache(monkeypatch, cache, mirror.url)
        dataset = register(monkeypatch, FILENAME, "0" * 64, size=10_000)
        refused(dataset, cache, f"is not the registered {FILENAME}",
                "sent more than 10,000 bytes", "LYRICGEN_MIRROR")
    assert sent[0] < 32 << 20  # the client stopped reading long before the end


def test_an_announced_oversize_is_refused_before_reading(monkeypatch, tmp_path, cache):
    body = stream(1000, announce=100_000_000)
    with Mirror(tmp_path / "served", {f"/{FILENAME}": body}) as mirror:
        use_cache(monkeypatch, cache, mirror.url)
        dataset = register(monkeypatch, FILENAME, "0" * 64, size=10_000)
        refused(dataset, cache, "announces 100,000,000 bytes", "the file has 10,000")


def test_the_registered_size_is_the_real_files(monkeypatch):
    dataset = datasets.DATASETS["jaychou"]
    assert dataset.size == 52_607  # ../shared/data/jaychou_lyrics.txt.zip, the sha256's file


def test_a_full_disk_is_named_and_not_blamed_on_the_network(monkeypatch, mirror, cache):
    dataset = served_dataset(monkeypatch, mirror, cache)
    monkeypatch.setattr(os, "fdopen", full_disk(room=100))
    message = refused(dataset, cache, "could not write", ".part: No space left on device",
                      str(cache), "LYRICGEN_DATA_DIR")
    assert "network" not in message and "--data" not in message


def damage(path: Path) -> bytes:
    """Cut the file at `path` in half, as an interrupted copy would; its new content."""
    raw = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(raw)
    return raw


def test_a_damaged_cache_is_fetched_again(monkeypatch, mirror, cache):
    dataset = served_dataset(monkeypatch, mirror, cache)
    path = datasets.fetch(dataset, progress=False)
    damage(path)
    assert datasets.fetch(dataset, progress=False) == path
    assert path.read_bytes() == (mirror.root / FILENAME).read_bytes()
    assert files_under(cache) == [path]
    assert mirror.requests == [f"/{FILENAME}"] * 2  # the damaged copy was not trusted


@pytest.mark.parametrize("how", ["truncated", "same size, other bytes", "larger"])
def test_a_damaged_cache_offline_is_a_clear_error(monkeypatch, tmp_path, cache, how):
    good = write_zip(tmp_path / "good" / FILENAME, {"songs.txt": make_text(seed=41)})
    cache.mkdir(parents=True)
    cached = cache / FILENAME
    raw = good.read_bytes()
    cached.write_bytes({"truncated": raw[:-100], "same size, other bytes": raw[::-1],
                        "larger": raw + b"junk"}[how])
    before = cached.read_bytes()
    with dead_url() as url:
        use_cache(monkeypatch, cache, url)
        register(monkeypatch, FILENAME, sha256_of(good), size=len(raw))
        with pytest.raises(LyricgenError) as info:
            corpus.resolve_data("jaychou", progress=False)  # what --data jaychou does
    message = str(info.value)
    assert f"the cached file {cached} is damaged" in message
    assert "--data" in message and "\n" not in message
    assert cached.read_bytes() == before and files_under(cache) == [cached]  # left as it was


def test_the_bar_is_drawn_on_a_terminal_only(monkeypatch, mirror, cache):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    dataset = served_dataset(monkeypatch, mirror, cache)
    for stream_, drawn in ((Terminal(), True), (io.StringIO(), False)):
        monkeypatch.setattr(sys, "stderr", stream_)
        datasets.fetch(dataset, progress=True)
        assert (f"fetch {FILENAME}" in stream_.getvalue()) == drawn
        (cache / FILENAME).unlink()
