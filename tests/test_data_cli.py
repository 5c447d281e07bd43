"""`lyricgen data info` and `lyricgen data fetch` through the command line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import assert_one_line_error, cli
from helpers_data import (Mirror, dead_url, files_under, full_disk, make_text, redirect,
                          register, sha256_of, use_cache, write_zip)


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    monkeypatch.delenv("LYRICGEN_DEBUG", raising=False)


@pytest.fixture
def text() -> str:
    return make_text(seed=50, lines=120)


@pytest.fixture
def corpus_file(tmp_path, text) -> Path:
    path = tmp_path / "lyrics.txt"
    path.write_bytes(text.encode("utf-8"))
    return path


def info_json(*args: str) -> dict:
    result = cli("data", "info", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def expected_info(text: str, val_fraction: float = 0.1) -> dict:
    val = int(len(text) * val_fraction)
    top = sorted(Counter(text).items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    return {"chars": len(text), "vocab_size": len(set(text)), "train_chars": len(text) - val,
            "val_chars": val, "lines": len(text.splitlines()),
            "most_common": [[c, n] for c, n in top]}


def assert_info(info: dict, expected: dict) -> None:
    assert {k: info[k] for k in expected} == expected


# --- data info ----------------------------------------------------------------------------------

def test_info_json_counts(corpus_file, text):
    assert_info(info_json("--data", str(corpus_file)), expected_info(text))


def test_info_says_which_corpus_it_describes(corpus_file, tmp_path, monkeypatch):
    assert info_json("--data", str(corpus_file))["corpus"] == str(corpus_file)
    monkeypatch.chdir(corpus_file.parent)
    result = cli("data", "info", "--data", corpus_file.name)
    assert result.exit_code == 0 and corpus_file.name in result.stdout.splitlines()[1]


def test_info_json_val_fraction_zero(corpus_file, text):
    info = info_json("--data", str(corpus_file), "--val-fraction", "0")
    assert_info(info, expected_info(text, val_fraction=0.0))
    assert info["val_chars"] == 0


def test_info_json_max_chars(corpus_file, text):
    assert_info(info_json("--data", str(corpus_file), "--max-chars", "333"),
                expected_info(text[:333]))


def test_info_json_newlines_space(corpus_file, text):
    info = info_json("--data", str(corpus_file), "--newlines", "space", "--max-chars", "500")
    expected = expected_info(text.replace("\n", " ")[:500])
    assert_info(info, expected)
    assert expected["lines"] == 1


def test_info_reads_a_zip(tmp_path, text):
    path = write_zip(tmp_path / "c.zip", {"2.txt": text[:200], "1.txt": text[200:]})
    assert_info(info_json("--data", str(path)), expected_info(text[200:] + "\n" + text[:200]))


def test_info_text_output(corpus_file, text):
    result = cli("data", "info", "--data", str(corpus_file))
    assert result.exit_code == 0, result.output
    cells = [[c.strip() for c in re.split(r"[│|]", line)[1:-1]]
             for line in result.stdout.splitlines()]
    rows = {row[0]: row[1] for row in cells if len(row) == 2}
    expected = expected_info(text)
    for key in ("chars", "vocab_size", "lines", "train_chars", "val_chars"):
        assert rows[key.replace("_", " ")] == f"{expected[key]:,}"


@pytest.mark.parametrize("args, code, words", [
    (["--data", "{tmp}/missing.txt"], 1, ["missing.txt", "not found"]),
    (["--data", "{tmp}/gbk.txt"], 1, ["gbk.txt", "UTF-8"]),
    (["--data", "{tmp}/lyrics.txt", "--val-fraction", "1.5"], 2,
     ["--val-fraction must be in [0, 1)"]),
    (["--data", "{tmp}/lyrics.txt", "--max-chars", "0"], 2, ["--max-chars must be at least 1"]),
    (["--data", "{tmp}/lyrics.txt", "--newlines", "tab"], 2, ["tab"]),
])
def test_info_errors_are_one_line(tmp_path, corpus_file, args, code, words):
    (tmp_path / "gbk.txt").write_bytes("春天的风\n".encode("gbk"))
    result = cli("data", "info", *[a.format(tmp=tmp_path) for a in args])
    assert_one_line_error(result, code, *words, stdout="")


def test_module_entry_point(corpus_file, text, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LYRICGEN_DEBUG"}
    proc = subprocess.run(
        [sys.executable, "-m", "lyricgen", "data", "info", "--json", "--data", str(corpus_file)],
        cwd=tmp_path, env=env, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert_info(json.loads(proc.stdout.decode("utf-8")), expected_info(text))


# --- data fetch ---------------------------------------------------------------------------------

FILENAME = "cli-songs.zip"


@contextmanager
def serving(monkeypatch, tmp_path: Path, text: str) -> Iterator[tuple[Path, Mirror]]:
    """A zip of `text` (tmp_path/served/FILENAME) served by a local mirror as the registered
    dataset, cached in tmp_path/cache: (the cache, the mirror), which stops at the end."""
    served = write_zip(tmp_path / "served" / FILENAME, {"songs.txt": text})
    with Mirror(tmp_path / "served") as mirror:
        use_cache(monkeypatch, tmp_path / "cache", mirror.url)
        register(monkeypatch, FILENAME, sha256_of(served))
        yield tmp_path / "cache", mirror


def test_fetch_through_a_local_mirror(monkeypatch, tmp_path, text):
    with serving(monkeypatch, tmp_path, text) as (cache, mirror):
        result = cli("data", "fetch")
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == str(cache / FILENAME)
        assert files_under(cache) == [cache / FILENAME]
        assert (cache / FILENAME).read_bytes() == \
            (tmp_path / "served" / FILENAME).read_bytes()
        assert_info(info_json("--data", "jaychou"), expected_info(text))
        assert mirror.requests == [f"/{FILENAME}"]


def test_fetch_with_the_mirror_down(monkeypatch, tmp_path):
    cache = tmp_path / "cache"
    with dead_url() as url:
        use_cache(monkeypatch, cache, url)
        register(monkeypatch, FILENAME, "0" * 64)
        result = cli("data", "fetch")
    assert_one_line_error(result, 1, "--data", "LYRICGEN_MIRROR", stdout="")
    assert files_under(cache) == []


def test_fetch_unknown_dataset(monkeypatch, tmp_path):
    cache = tmp_path / "cache"
    with dead_url() as url:
        use_cache(monkeypatch, cache, url)
        result = cli("data", "fetch", "no-such-set")
    assert_one_line_error(result, 2, "no-such-set", "jaychou", stdout="")
    assert not cache.exists()


# --- data fetch, hardened (issue 18) ------------------------------------------------------------

def test_fetch_draws_no_bar_into_a_log(monkeypatch, tmp_path, text):
    with serving(monkeypatch, tmp_path, text):
        result = cli("data", "fetch")  # stderr is not a terminal here
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_fetch_replaces_a_damaged_cached_file(monkeypatch, tmp_path, text):
    served = write_zip(tmp_path / "served" / FILENAME, {"songs.txt": text})
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / FILENAME).write_bytes(served.read_bytes()[:-10])  # an interrupted copy
    with Mirror(tmp_path / "served") as mirror:
        use_cache(monkeypatch, cache, mirror.url)
        register(monkeypatch, FILENAME, sha256_of(served))
        result = cli("data", "fetch")
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == str(cache / FILENAME)
        assert (cache / FILENAME).read_bytes() == served.read_bytes()
        (cache / FILENAME).write_bytes(b"PK\x03\x04 damaged")  # and through --data jaychou
        assert_info(info_json("--data", "jaychou"), expected_info(text))
        assert mirror.requests == [f"/{FILENAME}"] * 2
    assert files_under(cache) == [cache / FILENAME]


@pytest.mark.parametrize("command", [["data", "fetch"], ["data", "info", "--data", "jaychou"]])
def test_a_damaged_cached_file_offline_is_one_line(monkeypatch, tmp_path, command):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / FILENAME).write_bytes(b"PK\x03\x04 damaged")
    with dead_url() as url:
        use_cache(monkeypatch, cache, url)
        register(monkeypatch, FILENAME, "0" * 64)
        result = cli(*command)
    assert_one_line_error(result, 1, f"the cached file {cache / FILENAME} is damaged",
                          "--data", stdout="")
    assert (cache / FILENAME).read_bytes() == b"PK\x03\x04 damaged"
    assert files_under(cache) == [cache / FILENAME]


def test_fetch_through_a_redirect_loop_is_one_line(monkeypatch, tmp_path):
    cache = tmp_path / "cache"
    with Mirror(tmp_path / "served", {f"/{FILENAME}": redirect(f"/{FILENAME}")}) as mirror:
        use_cache(monkeypatch, cache, mirror.url)
        register(monkeypatch, FILENAME, "0" * 64)
        result = cli("data", "fetch")
    assert_one_line_error(result, 1, "redirect", "--data", "LYRICGEN_MIRROR", stdout="")
    assert files_under(cache) == []


def test_fetch_onto_a_full_disk_says_so(monkeypatch, tmp_path, text):
    with serving(monkeypatch, tmp_path, text) as (cache, _):
        monkeypatch.setattr(os, "fdopen", full_disk(room=0))
        result = cli("data", "fetch")
    assert_one_line_error(result, 1, "could not write", "No space left on device", stdout="")
    assert "--data" not in result.stderr
    assert files_under(cache) == []
