"""The test texts of benchmarks/texts.py, whose limits the default is measured against (issue
27): each source's probabilities of the next character, given any history, add up to one, and
its newlines fall where its structure says, so the limit is that of the text it generates."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "texts.py"
_spec = importlib.util.spec_from_file_location("texts", _PATH)
texts = importlib.util.module_from_spec(_spec)
sys.modules["texts"] = texts  # (its dataclasses look their module up)
_spec.loader.exec_module(texts)

SMALL = {  # each kind, small enough to sum over its whole alphabet
    "hidden": (texts.Hidden(states=4, alphabet=6, moves=0.3, emits=0.3), 6),
    "chain": (texts.Chain(order=2, alphabet=5, support=3, spread=0.5, line=4), 5),
    "pool": (texts.Pool(size=7, alphabet=4, line=3), 4),
    "refrain": (texts.Refrain(lines=5, line=3, repeat=0.4, chain=texts.Chain(
        order=1, alphabet=5, support=3, spread=0.5, line=3)), 5),
}


@pytest.mark.parametrize("kind", SMALL)
def test_the_next_character_s_probabilities_add_up_to_one(kind):
    source, alphabet = SMALL[kind]
    body = source.generate(200, seed=1)
    surprisal = source.log_probs(body, 1)
    assert np.all(np.isfinite(surprisal)) and np.all(surprisal <= 0)
    checked = 0
    for t in range(1, len(body)):
        if body[t] == "\n":
            continue
        total = sum(math.exp(source.log_probs(body[:t] + c, 1)[t])
                    for c in texts.chars(alphabet, getattr(source, "spacing", 1)))
        assert total == pytest.approx(1.0, abs=1e-9), (kind, t)
        checked += 1
    assert checked > 100


@pytest.mark.parametrize("kind", SMALL)
def test_newlines_fall_where_the_structure_puts_them(kind):
    source, _ = SMALL[kind]
    lines = source.generate(300, seed=2).split("\n")
    if kind == "hidden":
        assert {len(line) for line in lines[:-1]} == set(source.lines)
    elif kind == "refrain":  # songs of `lines` lines, a blank line after each
        songs = "\n".join(lines).split("\n\n")
        assert all(len(song.split("\n")) == source.lines for song in songs[:-1])
    else:
        assert {len(line) for line in lines[:-1]} == {source.line}


def test_the_limit_is_the_held_out_part_s_mean_surprisal():
    body, limit = texts.text("pool", 5_000)
    source = texts.SOURCES["pool"][0]
    held_out = source.log_probs(body, 0)[texts.train_size(body) + 1:]
    assert limit == pytest.approx(math.exp(-held_out.mean()))
    assert 1 < limit < 3000  # between certainty and a uniform pick
