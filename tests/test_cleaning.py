"""Cleaning a corpus (`--script`, `--tidy-spaces`, `--drop-lines`) on generated text: each
setting alone, the registered dataset's own settings (by name or by its file's content),
options winning over them, bad patterns, and checkpoints written before cleaning existed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from conftest import QUIET, assert_one_line_error, cli, lyrics, tiny_options
from helpers_data import register, sha256_of
from lyricgen import checkpoint
from lyricgen.data import datasets
from lyricgen.data.cleaning import Cleaning
from lyricgen.commands.train import train
from lyricgen.config import DataConfig
from lyricgen.data.corpus import load_corpus

# Traditional characters and their simplified forms, read off a dictionary by hand.
TRADITIONAL, SIMPLIFIED = "頭輕嘆誰讓雲夢風", "头轻叹谁让云梦风"
SONG = ("作词：某某\n作曲: 某某\n夢裡\u3000\u3000的風  吹過 \n月光  照在窗外\n"
        "歌词提供 某网站\n夢裡的雲\n")


def test_each_setting_alone():
    assert Cleaning(script="simplified").apply(TRADITIONAL + "\n") == SIMPLIFIED + "\n"
    assert Cleaning(script="traditional").apply(SIMPLIFIED) == TRADITIONAL
    assert Cleaning(tidy_spaces=True).apply("夢裡\u3000\u3000的風  吹過 \n\t月光\xa0照 ") \
        == "夢裡 的風 吹過\n月光 照"
    assert Cleaning(drop_lines="credits").apply(SONG) == \
        "夢裡\u3000\u3000的風  吹過 \n月光  照在窗外\n夢裡的雲\n"
    assert Cleaning(drop_lines="窗外|雲").apply(SONG).count("\n") == SONG.count("\n") - 2
    assert Cleaning().apply(SONG) == SONG


def corpus_text(path: Path, **options) -> str:
    c = load_corpus(DataConfig(data=str(path), **options), progress=False)
    return c.vocab.decode(c.ids.tolist())


def test_a_file_is_read_as_it_is_unless_asked(tmp_path):
    path = tmp_path / "song.txt"
    path.write_text(SONG, encoding="utf-8")
    assert corpus_text(path) == SONG
    assert corpus_text(path, script="simplified", tidy_spaces=True, drop_lines="credits") == \
        "梦里 的风 吹过\n月光 照在窗外\n梦里的云\n"


@pytest.mark.parametrize("by", ["name", "path"])
def test_the_registered_dataset_gets_its_own_cleaning_and_options_win(tmp_path, monkeypatch, by):
    data = tmp_path / "cache"
    data.mkdir()
    path = data / "song.txt"
    path.write_text(SONG, encoding="utf-8")
    dataset = register(monkeypatch, "song.txt", sha256_of(path), size=path.stat().st_size)
    monkeypatch.setitem(datasets.DATASETS, "jaychou", dataclasses.replace(
        dataset, cleaning=Cleaning("simplified", True, "credits")))
    monkeypatch.setenv("LYRICGEN_DATA_DIR", str(data))
    spec = "jaychou" if by == "name" else str(path)
    assert corpus_text(Path(spec)) == "梦里 的风 吹过\n月光 照在窗外\n梦里的云\n"
    assert corpus_text(Path(spec), script="keep", drop_lines="") == \
        "作词：某某\n作曲: 某某\n夢裡 的風 吹過\n月光 照在窗外\n歌词提供 某网站\n夢裡的雲\n"
    copy = tmp_path / "edited.txt"  # one character more: not the registered file
    copy.write_text(SONG + "夢", encoding="utf-8")
    assert corpus_text(copy) == SONG + "夢"


def test_data_info_counts_the_cleaned_text(tmp_path):
    path = tmp_path / "song.txt"
    path.write_text(SONG, encoding="utf-8")
    result = cli("data", "info", "--data", path, "--drop-lines", "credits", "--tidy-spaces",
                 "--script", "simplified", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["chars"] == len("梦里 的风 吹过\n月光 照在窗外\n梦里的云\n")


def test_a_pattern_that_is_not_a_regular_expression_is_one_line(tmp_path):
    path = tmp_path / "song.txt"
    path.write_text(SONG, encoding="utf-8")
    assert_one_line_error(cli("data", "info", "--data", path, "--drop-lines", "作词("), 2,
                          "--drop-lines", "not a regular expression")


def test_a_checkpoint_from_before_cleaning_resumes_on_the_text_it_read(tmp_path):
    """Format 1 stored no cleaning settings: its text was read as it was."""
    data = tmp_path / "lyrics.txt"
    data.write_text(lyrics(), encoding="utf-8")
    train(None, tiny_options(data, tmp_path / "run", epochs=1), **QUIET)
    raw = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    raw["version"] = 1
    for key in ("script", "tidy_spaces", "drop_lines"):
        del raw["config"]["data"][key]
    torch.save(raw, tmp_path / "run" / "last.pt")
    saved = checkpoint.load(tmp_path / "run" / "last.pt")
    assert (saved.config.data.script, saved.config.data.tidy_spaces,
            saved.config.data.drop_lines) == ("keep", False, "")
    train(None, tiny_options(data, tmp_path / "run", epochs=2), resume=True, **QUIET)
    assert checkpoint.load(tmp_path / "run" / "last.pt", training_state=True).progress.epoch == 2
