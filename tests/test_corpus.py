"""Reading corpora (.txt, .zip, folders), normalisation, the train/val split and bad input."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from conftest import assert_one_line_error, cli
from helpers_data import claim_size, make_text, write_zip
from lyricgen.data import text_files
from lyricgen.config import DataConfig
from lyricgen.data.corpus import load_corpus, read_text
from lyricgen.errors import LyricgenError


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def load(path: Path, **options):
    return load_corpus(DataConfig(data=str(path), **options), progress=False)


def decoded(c, ids) -> str:
    return c.vocab.decode(ids.tolist())


# --- readers ------------------------------------------------------------------------------------

def test_txt_file_is_read_unchanged(tmp_path):
    text = make_text(seed=1)
    assert read_text(write(tmp_path / "a.txt", text)) == text


def test_utf8_bom_is_stripped(tmp_path):
    text = make_text(seed=2)
    assert read_text(write(tmp_path / "bom.txt", "\ufeff" + text)) == text


@pytest.mark.parametrize("raw, expected", [
    ("春\r\n夏\r\n", "春\n夏\n"),
    ("春\r夏\r", "春\n夏\n"),
    ("a\r\r\nb", "a\n\nb"),  # a lone CR, then CRLF: two line breaks
    ("a\n\rb", "a\n\nb"),
    ("a\r\nb\rc\nd", "a\nb\nc\nd"),
])
def test_line_endings_become_lf(tmp_path, raw, expected):
    assert read_text(write(tmp_path / "eol.txt", raw)) == expected


def test_zip_reads_txt_members_in_name_order(tmp_path):
    members = {"b.txt": make_text(seed=3), "a.txt": make_text(seed=4),
               "sub/c.txt": make_text(seed=5), "UPPER.TXT": make_text(seed=6)}
    path = write_zip(tmp_path / "corpus.zip", {
        **members,
        "readme.md": "not text of the corpus",
        "cover.png": b"\x89PNG\x00\x00binary",
        "__MACOSX/._a.txt": b"\x00\x05\x16\x07 resource fork",
    })
    expected = "\n".join(members[name] for name in sorted(members))
    assert read_text(path) == expected


def test_zip_members_are_normalised_each(tmp_path):
    path = write_zip(tmp_path / "corpus.zip",
                     {"1.txt": "\ufeff春天\r\n", "2.txt": "\ufeff夏天\r秋"})
    assert read_text(path) == "春天\n\n夏天\n秋"


def test_zip_is_detected_by_content_not_name(tmp_path):
    text = make_text(seed=7)
    zipped = write_zip(tmp_path / "x.zip", {"x.txt": text})
    renamed = zipped.rename(tmp_path / "corpus.dat")
    assert read_text(renamed) == text


def test_folder_reads_txt_files_sorted_and_recursively(tmp_path):
    root = tmp_path / "lyrics"
    texts = {"a.txt": make_text(seed=8), "b.txt": make_text(seed=9),
             "c/d.txt": make_text(seed=10), "c/e/f.txt": make_text(seed=11)}
    for name in reversed(list(texts)):  # creation order must not matter
        write(root / name, texts[name])
    write(root / "notes.md", "ignored")
    write(root / "c" / "image.bin", b"\x00\x01")
    expected = "\n".join(texts[name] for name in sorted(texts))
    assert read_text(root) == expected


# --- normalisation, split, lines ----------------------------------------------------------------

def test_load_corpus_keeps_the_text(tmp_path):
    text = make_text(seed=12)
    c = load(write(tmp_path / "a.txt", text), val_fraction=0.0)
    assert decoded(c, c.ids) == text
    assert c.sha256 == hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_newlines_space(tmp_path):
    text = make_text(seed=13)
    c = load(write(tmp_path / "a.txt", text), newlines="space", val_fraction=0.0)
    assert decoded(c, c.ids) == text.replace("\n", " ")
    assert "\n" not in c.vocab.chars
    assert c.num_lines == 1


@pytest.mark.parametrize("max_chars", [1, 57, 10**9])
def test_max_chars_keeps_the_start(tmp_path, max_chars):
    text = make_text(seed=14)
    c = load(write(tmp_path / "a.txt", text), max_chars=max_chars, val_fraction=0.0)
    assert decoded(c, c.ids) == text[:max_chars]
    assert len(c.ids) == min(max_chars, len(text))
    assert c.vocab.chars == "".join(sorted(set(text[:max_chars])))


def test_max_chars_with_newlines_space(tmp_path):
    text = make_text(seed=15)
    c = load(write(tmp_path / "a.txt", text), newlines="space", max_chars=100, val_fraction=0.0)
    assert decoded(c, c.ids) == text.replace("\n", " ")[:100]


@pytest.mark.parametrize("length", [1234, 1000, 9])
def test_validation_is_the_contiguous_tail(tmp_path, length):
    text = (make_text(seed=16, lines=200) * 2)[:length]
    c = load(write(tmp_path / "a.txt", text), val_fraction=0.1)
    num_val = length // 10
    assert c.num_train == length - num_val
    assert decoded(c, c.train_ids) == text[: length - num_val]
    assert decoded(c, c.val_ids) == text[length - num_val:]


def test_val_fraction_zero_means_no_validation(tmp_path):
    text = make_text(seed=17)
    c = load(write(tmp_path / "a.txt", text), val_fraction=0.0)
    assert c.num_train == len(text)
    assert len(c.val_ids) == 0


@pytest.mark.parametrize("text", [
    make_text(seed=18, lines=33),                  # ends with a newline
    make_text(seed=19, lines=5).rstrip("\n"),       # no final newline
    "一",
    "\n\n三",
    "甲\n\n乙\n",
])
def test_lines_are_counted(tmp_path, text):
    c = load(write(tmp_path / "a.txt", text))
    assert c.num_lines == len(text.splitlines())


# --- bad input ----------------------------------------------------------------------------------

def _truncated_zip(path: Path) -> Path:
    raw = write_zip(path, {"a.txt": make_text(seed=20)}).read_bytes()
    return write(path, raw[: len(raw) // 2])


def _corrupt_deflate_zip(path: Path) -> Path:
    text = make_text(seed=21, lines=200)
    raw = bytearray(write_zip(path, {"a.txt": text}).read_bytes())
    data_start = 30 + len("a.txt")  # local file header, then the compressed data
    for i in range(data_start + 8, data_start + 40):
        raw[i] ^= 0xA5
    return write(path, bytes(raw))


def _bad_crc_zip(path: Path) -> Path:
    raw = bytearray(write_zip(path, {"a.txt": make_text(seed=22)}, zipfile.ZIP_STORED)
                    .read_bytes())
    raw[30 + len("a.txt") + 3] ^= 0x01  # flip one bit of the stored text
    return write(path, bytes(raw))


BAD_INPUTS = {
    "missing": (lambda d: d / "nope.txt", r"not found"),
    "empty": (lambda d: write(d / "empty.txt", b""), r"empty"),
    "whitespace": (lambda d: write(d / "blank.txt", " \n\t\r\n\u3000 \n"), r"whitespace"),
    "gbk": (lambda d: write(d / "gbk.txt", "春天的风吹过山和海\n".encode("gbk")), r"not UTF-8"),
    "binary": (lambda d: write(d / "blob.txt", b"abc\x00\x01\x02def"), r"binary.*NUL|NUL"),
    "zip without txt": (lambda d: write_zip(d / "c.zip", {"a.md": "x", "b/": ""}), r"\.txt"),
    "truncated zip": (lambda d: _truncated_zip(d / "t.zip"), r"damaged zip"),
    "corrupt zip data": (lambda d: _corrupt_deflate_zip(d / "z.zip"), r"damaged zip"),
    "zip bad crc": (lambda d: _bad_crc_zip(d / "crc.zip"), r"damaged zip"),
    "folder without txt": (lambda d: write(d / "no_text_here" / "a.md", "x").parent, r"no \.txt"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_raises_a_helpful_error(tmp_path, case):
    make, message = BAD_INPUTS[case]
    path = make(tmp_path)
    with pytest.raises(LyricgenError, match=message) as info:
        load(path)
    assert path.name in str(info.value)  # the message names the offending file
    assert info.value.exit_code == 1


# --- bounded reading (issue 18): regular files only, a cap, no more than --max-chars needs ----

def finishes_within(seconds: float, fn, fifo: Path | None = None):
    """fn()'s outcome (its value, or the exception it raised), asserting that it came within
    `seconds`; a reader stuck opening `fifo` is let go (a writer opens it) before failing."""
    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(_outcome(fn)), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive() and fifo is not None:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # unblocks the reader
        thread.join(seconds)
    assert outcome, f"still running after {seconds} s"
    return outcome[0]


def _outcome(fn):
    try:
        return fn()
    except Exception as e:  # handed to the test to assert on
        return e


def test_a_fifo_is_refused_without_being_opened(tmp_path):
    fifo = tmp_path / "lyrics.txt"
    os.mkfifo(fifo)  # nobody writes to it: opening it would wait forever
    error = finishes_within(5, lambda: load(fifo), fifo)
    assert isinstance(error, LyricgenError), error
    assert str(fifo) in str(error) and "FIFO" in str(error) and "regular file" in str(error)


def test_a_device_is_refused(tmp_path):
    error = finishes_within(5, lambda: load(Path("/dev/zero")))  # endless zeros
    assert isinstance(error, LyricgenError), error
    assert "/dev/zero is a character device, not a regular file" in str(error)


@pytest.mark.parametrize("command", ["train", "info"])
def test_special_files_through_the_cli_are_one_line(tmp_path, monkeypatch, command):
    monkeypatch.delenv("LYRICGEN_DEBUG", raising=False)
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    for data, kind in (("/dev/zero", "character device"), (str(fifo), "FIFO")):
        args = (["train", "--data", data, "--out", tmp_path / "run", "--device", "cpu"]
                if command == "train" else ["data", "info", "--data", data])
        result = finishes_within(10, lambda: cli(*args), fifo)
        # (train may say on stdout what it starts before it reads the corpus)
        assert_one_line_error(result, 1, data, kind, stdout="" if command == "info" else None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe.txt"]  # nothing written


def repetitive_text(megabytes: int) -> str:
    """Generated text of about `megabytes` MB that deflate packs some two hundredfold."""
    unit = make_text(seed=30, lines=20)
    return (unit * (megabytes * (1 << 20) // len(unit.encode("utf-8")) + 1))


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> tuple[Path, str]:
    """A zip of about 150 KB whose one member holds 32 MB of text and claims 2 GB, as a zip
    bomb's forged header would; and the text's start."""
    text = repetitive_text(32)
    path = write_zip(tmp_path_factory.mktemp("bomb") / "bomb.zip", {"songs.txt": text})
    assert path.stat().st_size < 200_000
    return claim_size(path, 2 << 30), text[:10_000]


def peak_memory(fn):
    """fn()'s outcome and the peak of Python memory allocated while it ran, in bytes."""
    tracemalloc.start()
    try:
        return _outcome(fn), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_zip_bomb_is_refused_unread(bomb):
    path, _ = bomb
    error, peak = peak_memory(lambda: load(path))
    assert isinstance(error, LyricgenError), error
    assert str(path) in str(error) and "1,073,741,824 bytes" in str(error)
    assert "--max-chars" in str(error) and "LYRICGEN_MAX_CORPUS_BYTES" in str(error)
    assert peak < 4 << 20  # the 32 MB inside were never decompressed


@pytest.mark.parametrize("max_chars", [1000, 9_999])
def test_max_chars_reads_only_the_start_of_a_zip_bomb(bomb, max_chars):
    path, start = bomb
    c, peak = peak_memory(lambda: load(path, max_chars=max_chars, val_fraction=0.0))
    assert not isinstance(c, Exception), c
    assert decoded(c, c.ids) == start[:max_chars]
    assert peak < 4 << 20  # about 4 bytes a character were read, not 32 MB


def test_an_oversized_text_is_refused_unless_max_chars_allows(tmp_path, monkeypatch):
    monkeypatch.setenv("LYRICGEN_MAX_CORPUS_BYTES", "1000000")
    text = repetitive_text(3)
    big = write(tmp_path / "big.txt", text)
    for options in ({}, {"max_chars": 10**9}):  # the size as stat says it, then as read
        with pytest.raises(LyricgenError, match="more than 1,000,000 bytes") as info:
            load(big, **options)
        assert str(big) in str(info.value)
    c = load(big, max_chars=5000, val_fraction=0.0)
    assert decoded(c, c.ids) == text[:5000]


def test_the_cap_counts_a_folder_as_a_whole(tmp_path, monkeypatch):
    monkeypatch.setenv("LYRICGEN_MAX_CORPUS_BYTES", "1000000")
    text = "abc de\n" * 57_000  # 399,000 bytes
    for name in "abc":
        write(tmp_path / "songs" / f"{name}.txt", text)
    with pytest.raises(LyricgenError, match=r"c\.txt holds more than 1,000,000 bytes"):
        load(tmp_path / "songs")


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1e9"])
def test_a_bad_byte_limit_is_named(tmp_path, monkeypatch, value):
    monkeypatch.setenv("LYRICGEN_MAX_CORPUS_BYTES", value)
    with pytest.raises(LyricgenError, match="LYRICGEN_MAX_CORPUS_BYTES must be a positive"):
        load(write(tmp_path / "a.txt", "春天\n"))


def test_reading_stops_once_max_chars_are_there(tmp_path):
    text = make_text(seed=31, lines=100)
    # What follows is never read: neither the next zip member nor the next file.
    bad = "春天的风\n".encode("gbk")
    zipped = write_zip(tmp_path / "c.zip", {"1.txt": text, "2.txt": bad})
    write(tmp_path / "folder" / "1.txt", text)
    write(tmp_path / "folder" / "2.txt", bad)
    for path in (zipped, tmp_path / "folder"):
        c = load(path, max_chars=len(text), val_fraction=0.0)
        assert decoded(c, c.ids) == text
        with pytest.raises(LyricgenError, match="not UTF-8"):
            load(path)


TRICKY = ("\ufeff春\r\n夏秋\r冬\r\n\r\nab" + make_text(seed=32, lines=30).replace("\n", "\r\n")
          + "日月\r")


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64])
def test_chunked_reading_gives_the_same_text(tmp_path, monkeypatch, chunk):
    """Blocks end inside characters, between \\r and \\n and inside the BOM: the text is the
    same as read whole, and --max-chars keeps its start."""
    expected = TRICKY.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    path = write(tmp_path / "a.txt", TRICKY)
    zipped = write_zip(tmp_path / "a.zip", {"1.txt": TRICKY, "2.txt": TRICKY})
    monkeypatch.setattr(text_files, "CHUNK_BYTES", chunk)
    assert read_text(path) == expected
    assert read_text(zipped) == expected + "\n" + expected
    for max_chars in (1, 2, 3, 4, 5, 17, len(expected), len(expected) + 1, 10**9):
        got = read_text(path, max_chars=max_chars)
        assert got[:max_chars] == expected[:max_chars]
        got = read_text(zipped, max_chars=max_chars)
        assert got[:max_chars] == (expected + "\n" + expected)[:max_chars]


@pytest.mark.parametrize("chunk", [1, 4, 1 << 20])
def test_the_offset_of_a_bad_byte_is_exact_in_chunks(tmp_path, monkeypatch, chunk):
    raw = "春夏秋冬\n".encode("utf-8") * 3 + "风".encode("gbk") + b"\n"
    monkeypatch.setattr(text_files, "CHUNK_BYTES", chunk)
    with pytest.raises(LyricgenError, match=r"bad byte at offset 39\)"):
        read_text(write(tmp_path / "a.txt", raw))
    with pytest.raises(LyricgenError, match="not UTF-8"):  # cut off inside a character
        read_text(write(tmp_path / "b.txt", "春夏".encode("utf-8")[:-1]))


def test_a_zip_bomb_through_the_cli(bomb, monkeypatch):
    monkeypatch.delenv("LYRICGEN_DEBUG", raising=False)
    path, start = bomb
    assert_one_line_error(cli("data", "info", "--data", path), 1, str(path),
                          "--max-chars", stdout="")
    result = cli("data", "info", "--json", "--data", path, "--max-chars", 1000)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["chars"] == 1000
