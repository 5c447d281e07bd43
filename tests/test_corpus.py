"""Reading corpora (.txt, .zip, folders), normalisation, the train/val split and bad input."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from helpers_data import make_text, write_zip
from lyricgen.config import DataConfig
from lyricgen.corpus import load_corpus, read_text
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
