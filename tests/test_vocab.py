"""Vocab: deterministic sorted characters, ids, counts, serialisation, unknown characters."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers_data import make_text
from lyricgen.errors import LyricgenError, UsageError
from lyricgen.data.vocab import UnknownCharsError, Vocab, build_vocab

# build_vocab has a fixed cost (~50 ms, tables over all code points): few examples suffice
PROPERTY = settings(max_examples=40, deadline=None, derandomize=True, database=None)


def shuffled(text: str, seed: int) -> str:
    chars = list(text)
    random.Random(seed).shuffle(chars)
    return "".join(chars)


def plain_ids(text: str) -> list[int]:
    """The ids a plain dict over the sorted distinct characters gives."""
    index = {c: i for i, c in enumerate(sorted(set(text)))}
    return [index[c] for c in text]


def test_vocab_is_sorted_and_independent_of_order():
    text = make_text(seed=30) + "😀é\t"
    vocabs = [build_vocab(t)[0] for t in (text, shuffled(text, 1), shuffled(text, 2))]
    assert all(v.chars == "".join(sorted(set(text))) for v in vocabs)
    assert vocabs[0] == vocabs[1] == vocabs[2]


def test_ids_equal_a_plain_dict_encoding():
    text = make_text(seed=31) + "😀"  # a character outside the BMP is one id too
    vocab, ids = build_vocab(text)
    assert ids.tolist() == plain_ids(text)
    assert vocab.encode(text) == plain_ids(text)


def test_encode_decode_round_trip():
    text = make_text(seed=32)
    vocab, ids = build_vocab(text)
    assert vocab.decode(ids.tolist()) == text
    assert vocab.decode(vocab.encode(text)) == text
    part = text[5:40]
    assert vocab.decode(vocab.encode(part)) == part


def test_counts_equal_counter():
    text = make_text(seed=33)
    vocab, _ = build_vocab(text)
    counter = Counter(text)
    assert vocab.counts == [counter[c] for c in vocab.chars]


@pytest.mark.parametrize("distinct, dtype", [(1, torch.int16), (40, torch.int16),
                                             (32767, torch.int16), (32768, torch.int32)])
def test_ids_use_a_compact_dtype(distinct, dtype):
    # distinct characters from U+0100 up (all below the surrogates), each twice, shuffled
    text = shuffled("".join(chr(0x100 + i) for i in range(distinct)) * 2, seed=distinct)
    vocab, ids = build_vocab(text)
    assert len(vocab) == distinct
    assert ids.dtype == dtype
    assert ids.tolist() == [ord(c) - 0x100 for c in text]


def test_to_dict_from_dict_round_trip():
    vocab, _ = build_vocab(make_text(seed=34))
    again = Vocab.from_dict(json.loads(json.dumps(vocab.to_dict(), ensure_ascii=False)))
    assert again == vocab
    assert (again.chars, again.counts) == (vocab.chars, vocab.counts)
    assert again.index == {c: i for i, c in enumerate(vocab.chars)}


def test_vocab_rejects_unsorted_or_repeated_chars():
    for chars in ("ba", "aab"):
        with pytest.raises(ValueError):
            Vocab(chars)


def test_empty_text_has_no_vocab():
    with pytest.raises(LyricgenError):
        build_vocab("")


def test_unknown_chars_are_named_in_the_error():
    vocab, _ = build_vocab("春夏秋冬abc")
    with pytest.raises(UnknownCharsError) as info:
        vocab.encode("春x夏雪x秋")
    err = info.value
    assert err.chars == ["x", "雪"]  # distinct, in order of appearance
    assert "'x'" in str(err) and "'雪'" in str(err)
    assert isinstance(err, UsageError) and isinstance(err, LyricgenError)
    assert err.exit_code == 2


def test_unknown_chars_error_shortens_a_long_list():
    vocab, _ = build_vocab("a")
    missing = [chr(0x4E00 + i) for i in range(12)]
    with pytest.raises(UnknownCharsError) as info:
        vocab.encode("".join(missing))
    assert info.value.chars == missing
    assert str(info.value).startswith("12 ")  # the count of unknown characters
    assert repr(missing[9]) in str(info.value) and repr(missing[10]) not in str(info.value)


def test_unknown_chars_skip_drops_them():
    vocab, _ = build_vocab("春夏秋冬abc")
    assert vocab.encode("春x夏雪x秋", unknown="skip") == [vocab.chars.index(c) for c in "春夏秋"]
    assert vocab.decode(vocab.encode("春x夏雪x秋", unknown="skip")) == "春夏秋"
    assert vocab.unknown("春x夏雪x秋") == ["x", "雪"]


# --- properties ---------------------------------------------------------------------------------

@PROPERTY
@given(st.text(min_size=1, max_size=200))
def test_any_text_round_trips_through_a_sorted_distinct_vocab(text):
    vocab, ids = build_vocab(text)
    assert vocab.decode(ids.tolist()) == text
    assert ids.tolist() == plain_ids(text)
    assert list(vocab.chars) == sorted(set(text))
    assert len(set(vocab.chars)) == len(vocab.chars)
    assert sum(vocab.counts) == len(text)
