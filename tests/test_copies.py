"""The copy guard (`--max-copy N`): its index against a brute-force search of the corpus, no run
of N written by free text or songs on both backends, how much of each line the corpus holds,
the terminal's marks, and checkpoints without their corpus."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from conftest import assert_one_line_error, cli, lyrics
from lyricgen import checkpoint
from lyricgen.commands.sample import sample
from lyricgen.config import SampleConfig
from lyricgen.copies import CopyIndex
from lyricgen.data.vocab import build_vocab

CORPUS = lyrics()  # the text of the `trained` run (no cleaning: it is no registered dataset)


def unspaced(line: str) -> str:
    return line.replace(" ", "")


def runs_of(text: str, n: int) -> set[str]:
    """Every run of n characters (spaces apart) within a line of `text`, by brute force."""
    return {line[i:i + n] for line in unspaced(text).split("\n")
            for i in range(len(line) - n + 1)}


def longest_held(line: str, text: str) -> int:
    """The longest run of `line` (spaces apart) within a line of `text`, by trying every run."""
    line, lines = unspaced(line), unspaced(text).split("\n")
    return max((j - i for i in range(len(line)) for j in range(i + 1, len(line) + 1)
                if any(line[i:j] in held for held in lines)), default=0)


@pytest.mark.parametrize("n", [2, 4, 6])
def test_the_guard_forbids_exactly_the_characters_that_complete_a_run_of_the_corpus(n):
    text = CORPUS + "窗外 月光\n"  # a space inside a line is no character of a run
    vocab, ids = build_vocab(text)
    index = CopyIndex(ids, vocab, n)
    runs, rng = runs_of(text, n), random.Random(n)
    seen = unspaced(text)
    contexts = [seen[i:i + n - 1] for i in range(len(seen) - n)]  # many seen, some across lines
    letters = vocab.chars.replace(" ", "")
    contexts += ["".join(rng.choice(letters) for _ in range(n - 1)) for _ in range(200)]
    history = torch.tensor([[vocab.index[c] for c in context] for context in contexts])
    forbidden = index.forbidden(history)
    for context, row in zip(contexts, forbidden):
        expected = [("\n" not in context and context + c in runs) for c in vocab.chars]
        assert row.tolist() == expected, context
    # -1: no character there (the line began later): nothing can complete a run of n
    assert not index.forbidden(torch.full((3, n - 1), -1)).any()


def test_how_much_of_a_line_the_corpus_holds():
    vocab, ids = build_vocab(CORPUS)
    index = CopyIndex(ids, vocab, 0)
    rng = random.Random(0)
    lines = [line for line in CORPUS.split("\n")[:20]]
    lines += ["".join(rng.choice(vocab.chars.replace("\n", "")) for _ in range(12))
              for _ in range(20)]
    lines += [a[:5] + b[-7:] for a, b in zip(lines[:10], lines[10:20])]  # two pieces joined
    for line in lines:
        assert index.longest(line) == longest_held(line, CORPUS), line


def json_samples(checkpoint_path: Path, *args) -> list[dict]:
    result = cli("sample", "--checkpoint", checkpoint_path, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


FREE = ["--length", 120, "--temperature", 0.7]
SONG = ["--lines", 6, "--line-length", "5-8", "--rhyme", "AABB", "--candidates", 4]


@pytest.mark.parametrize("backend", ["scratch", "builtin"])
@pytest.mark.parametrize("kind", [FREE, SONG], ids=["free text", "song"])
@pytest.mark.parametrize("n", [4, 6])
def test_no_run_of_n_characters_of_the_corpus_is_written(trained, backend, kind, n):
    runs = runs_of(CORPUS, n)
    refrain = max(CORPUS.split("\n"), key=len)  # the prompt leads into the corpus
    for seed in (0, 1):
        for out in json_samples(trained / "best.pt", *kind, "--max-copy", n, "--seed", seed,
                                "--num-samples", 3, "--backend", backend, "--prefix",
                                refrain[:n - 1]):
            text = unspaced(out["prefix_used"] + out["text"])
            assert not any(line[i:i + n] in runs for line in text.split("\n")
                           for i in range(len(line) - n + 1)), text
            assert all(line["copied"] < n for line in out["lines"])
    # the same prompt and seeds without the guard do copy, so the guard did the work
    copied = [line["copied"] for seed in (0, 1) for out in json_samples(
        trained / "best.pt", *kind, "--max-copy", 0, "--seed", seed, "--num-samples", 3,
        "--backend", backend, "--prefix", refrain[:n - 1]) for line in out["lines"]]
    assert max(copied) >= n


def test_every_line_of_json_says_how_much_of_it_the_corpus_holds(trained):
    for out in json_samples(trained / "best.pt", "--length", 100, "--max-copy", 0, "--seed", 0,
                            "--num-samples", 2):
        assert out["lines"] and all(set(line) == {"text", "rhyme", "copied", "score"}
                                    for line in out["lines"])
        for line in out["lines"]:
            assert line["copied"] == longest_held(line["text"], CORPUS), line


@pytest.mark.parametrize("mark", [True, False])
def test_a_terminal_marks_the_lines_that_copy_when_copies_are_allowed(trained, mark):
    refrain = max(CORPUS.split("\n"), key=len)
    for lines, cfg in [(None, SampleConfig(length=60, greedy=True, max_copy=0)),
                       (3, SampleConfig(lines=3, greedy=True, max_copy=0))]:
        written: list[str] = []
        sample(trained / "best.pt", [refrain[:4]], cfg, stream=lambda text, end=False:
               written.append(text + ("\n" if end else "")), mark_copies=mark)
        shown = "".join(written).rstrip("\n").split("\n")
        assert len(shown) > 1 and (lines is None or len(shown) == lines)
        marked = 0
        for line in shown:
            text, _, note = line.partition("  \x1b[2m")
            run = longest_held(text, CORPUS)
            assert bool(note) == (mark and run >= 6), line
            assert not note or note == f"(copied: {run} characters)\x1b[0m"
            marked += bool(note)
        assert marked or not mark  # greedy from a refrain copies it


def test_a_checkpoint_without_its_corpus_samples_unguarded_with_a_warning(trained, tmp_path):
    saved = checkpoint.load(trained / "best.pt", training_state=True)
    saved.corpus_ids = None
    checkpoint.save(saved, tmp_path / "old.pt")
    result = cli("sample", "--checkpoint", tmp_path / "old.pt", "--length", 10, "--seed", 0)
    assert result.exit_code == 0 and "copies of it are not prevented" in result.stderr
    assert len(result.stdout) >= 10
    assert_one_line_error(cli("sample", "--checkpoint", tmp_path / "old.pt", "--max-copy", 6),
                          2, "--max-copy needs", "train it again")


@pytest.mark.parametrize("value", [1, -1, 1001])
def test_max_copy_is_0_or_from_2(trained, value):
    assert_one_line_error(cli("sample", "--checkpoint", trained / "best.pt", "--max-copy", value),
                          2, "--max-copy")


def test_a_checkpoint_whose_corpus_ids_are_not_ids_of_its_vocabulary_is_damaged(trained,
                                                                                  tmp_path):
    raw = torch.load(trained / "best.pt", weights_only=True)
    raw["corpus_ids"] = raw["corpus_ids"].clone()
    raw["corpus_ids"][3] = len(raw["vocab"]["chars"])
    torch.save(raw, tmp_path / "bad.pt")
    assert_one_line_error(cli("sample", "--checkpoint", tmp_path / "bad.pt"), 1, "is damaged",
                          "corpus ids")
