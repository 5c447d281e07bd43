"""Songs in a form (`sample --lines`): rhyme keys against hand-checked characters, the form's
parsing and its errors, every form option held on every song for several seeds and both
backends, the copy guard, JSON, and the [sample] preset table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from conftest import assert_one_line_error, cli, lyrics
from lyricgen import checkpoint
from lyricgen.songs import line_draw, rhyme, songwriter, words
from lyricgen.errors import UsageError
from lyricgen.songs.form import check_vocab, make_form, parse_lengths
from lyricgen.sampler import pick_next
from lyricgen.data.vocab import Vocab

ROOT = Path(__file__).parent.parent
REFRAINS = [line for line in lyrics().splitlines() if len(line) >= 6]


def chars(line: str) -> int:
    return sum(not c.isspace() for c in line)


# --- rhyme keys ---------------------------------------------------------------------------------

# 十三辙 by hand: each character's pinyin final, read off a dictionary, and its group.
HAND_CHECKED = {
    "发花": "花家他",  # hua, jia, ta
    "梭波": "我多歌",  # wo, duo, ge
    "乜斜": "月雪夜",  # yue, xue, ye
    "一七": "是日字你去",  # shi, ri, zi, ni, qu
    "姑苏": "苦路",  # ku, lu
    "怀来": "开来爱",  # kai, lai, ai
    "灰堆": "对飞谁",  # dui, fei, shui
    "遥条": "好笑",  # hao, xiao
    "油求": "走愁留",  # zou, chou, liu
    "言前": "难天前远",  # nan, tian, qian, yuan
    "人辰": "人心云们",  # ren, xin, yun, men
    "江阳": "光唱香",  # guang, chang, xiang
    "中东": "风中星情",  # feng, zhong, xing, qing
}


@pytest.mark.parametrize("group", list(HAND_CHECKED))
def test_han_characters_fall_in_their_rhyme_group(group):
    for char in HAND_CHECKED[group]:
        assert rhyme.line_key(f"窗外的{char}") == group, char


def test_other_text_rhymes_by_the_ending_of_its_last_word():
    assert rhyme.line_key("walking in the night") == rhyme.line_key("Shining light!") == "ight"
    assert rhyme.line_key("the rain") == rhyme.line_key("again,") == "ain"
    assert rhyme.line_key("the rain") != rhyme.line_key("the sun")
    assert rhyme.line_key("1 2 3") is None and rhyme.line_key("   ") is None


# --- the form's options -------------------------------------------------------------------------

def test_line_lengths_are_a_number_a_range_or_a_pattern():
    assert parse_lengths("7") == ((7, 7),)
    assert parse_lengths("5-9") == ((5, 9),)
    assert parse_lengths("7,7,5,7") == ((7, 7), (7, 7), (5, 5), (7, 7))
    form = make_form(6, "7,5", "AABB", None, None)
    assert [form.length(i) for i in range(6)] == [(7, 7), (5, 5)] * 3
    assert [form.letter(i) for i in range(6)] == list("AABBAA")
    assert make_form(None, None, None, "花", "分开不难").lines == 4


@pytest.mark.parametrize("args, phrases", [
    pytest.param(["--lines", 4, "--line-length", 0], ["--line-length '0'", "from 1"],
                 id="line length 0"),
    pytest.param(["--lines", 4, "--line-length", "9-5"], ["--line-length '9-5'"],
                 id="range backwards"),
    pytest.param(["--lines", 4, "--line-length", "seven"], ["--line-length 'seven'"],
                 id="line length not a number"),
    pytest.param(["--lines", 4, "--rhyme", "A1B2"], ["--rhyme 'A1B2'", "A-Z", "X"],
                 id="scheme with other signs"),
    pytest.param(["--lines", 4, "--rhyme-with", "1"], ["--rhyme-with '1'"],
                 id="rhyme with a character without a rhyme"),
    pytest.param(["--acrostic", "分Q"], ["--acrostic", "'Q' not in the model's vocabulary"],
                 id="acrostic character not in the vocabulary"),
    pytest.param(["--acrostic", "分开", "--lines", 3], ["--acrostic", "sets 2 lines"],
                 id="acrostic and lines disagree"),
    pytest.param(["--acrostic", "分开", "--prefix", "月光"], ["--acrostic", "drop --prefix"],
                 id="acrostic with a prefix"),
    pytest.param(["--rhyme", "AABB"], ["--rhyme", "give --lines N"], id="form without lines"),
    pytest.param(["--lines", 0], ["--lines must be from 1"], id="no lines"),
    pytest.param(["--lines", 2, "--candidates", 0], ["--candidates must be at least 1"],
                 id="no candidates"),
    pytest.param(["--start-temperature", 2, "--candidates", 1],
                 ["--start-temperature", "give --lines", "--candidates above 1"],
                 id="start temperature for text drawn a character at a time"),
    pytest.param(["--lines", 2, "--start-temperature", 0],
                 ["--start-temperature must be a finite number > 0"],
                 id="start temperature 0"),
    pytest.param(["--repetition-penalty", 2, "--candidates", 1],
                 ["--repetition-penalty", "give --lines", "--candidates above 1"],
                 id="repetition penalty for text drawn a character at a time"),
    pytest.param(["--lines", 2, "--rarity", -1], ["--rarity must be a number >= 0"],
                 id="negative rarity"),
])
def test_a_form_that_cannot_be_met_is_one_line_and_exit_2(trained, args, phrases):
    result = cli("sample", "--checkpoint", trained / "best.pt", *args)
    assert_one_line_error(result, 2, *phrases)


@pytest.mark.parametrize("form, vocab, phrases", [
    ((2, None, None, "花", None), "\n分开心", ["--rhyme-with", "发花", "no character"]),
    ((2, None, "AA", None, None), "\n123", ["--rhyme", "no character", "has a rhyme"]),
    ((2, None, None, None, None), "分开心", ["without newlines"]),
])
def test_a_vocabulary_that_cannot_write_the_form_is_refused(form, vocab, phrases):
    with pytest.raises(UsageError) as e:
        check_vocab(make_form(*form), Vocab("".join(sorted(vocab))))
    assert all(phrase in str(e.value) for phrase in phrases)


# --- songs --------------------------------------------------------------------------------------

def songs(checkpoint: Path, *args) -> list[dict]:
    result = cli("sample", "--checkpoint", checkpoint, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def rhyme_pairs_hold(lines: list[dict], scheme: str) -> bool:
    """Every line has the key of the first earlier line of its letter."""
    first: dict[str, str] = {}
    for i, line in enumerate(lines):
        letter = scheme[i % len(scheme)]
        if letter == "X":
            continue
        if letter in first and line["rhyme"] != first[letter]:
            return False
        first.setdefault(letter, line["rhyme"])
    return True


@pytest.mark.parametrize("backend", ["scratch", "builtin"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_song_has_its_form(trained, backend, seed):
    for args, scheme, lengths in [
        (["--lines", 6, "--line-length", "7", "--rhyme", "AABB"], "AABB", [(7, 7)]),
        (["--lines", 5, "--line-length", "4-9", "--rhyme", "XAXA", "--candidates", 4],
         "XAXA", [(4, 9)]),
        (["--lines", 8, "--line-length", "7,7,5,7", "--rhyme", "ABAB", "--temperature", 1.5],
         "ABAB", [(7, 7), (7, 7), (5, 5), (7, 7)]),
    ]:
        for song in songs(trained / "best.pt", *args, "--num-samples", 3, "--seed", seed,
                          "--backend", backend):
            lines = song["lines"]
            assert len(lines) == args[1]
            for i, line in enumerate(lines):
                low, high = lengths[i % len(lengths)]
                assert low <= chars(line["text"]) <= high, line
                assert line["text"] == line["text"].strip() and "  " not in line["text"]
            assert rhyme_pairs_hold(lines, scheme), lines
            assert song["text"] == "\n".join(line["text"] for line in lines)


@pytest.mark.parametrize("seed", [0, 1])
def test_acrostic_lines_start_with_its_characters_and_rhyme_with_fixes_the_group(trained, seed):
    for song in songs(trained / "best.pt", "--acrostic", "分开月光", "--rhyme-with", "开",
                      "--line-length", "5-8", "--num-samples", 2, "--seed", seed):
        lines = song["lines"]
        assert [line["text"][0] for line in lines] == list("分开月光")
        assert all(line["rhyme"] == "怀来" for line in lines)  # 开: kai


def test_the_start_temperature_draws_each_line_s_first_character(trained, monkeypatch):
    draws = []  # (line_start, ids) of each draw

    def pick(logits, cfg, generator, line_start=None):
        ids = pick_next(logits, cfg, generator, line_start)
        assert cfg.start_temperature == 4.0
        draws.append((line_start.clone(), ids))
        return ids

    monkeypatch.setattr(line_draw, "pick_next", pick)
    (song,) = songs(trained / "best.pt", "--lines", 3, "--line-length", "4-6",
                    "--start-temperature", 4, "--candidates", 2, "--seed", 0)
    assert len(song["lines"]) == 3
    firsts = [bool(start.all()) for start, _ in draws]
    # Every stream starts its line at the same draw; only that draw is a line start.
    assert all(first or not start.any() for first, (start, _) in zip(firsts, draws))
    assert firsts[0] and sum(firsts) >= 3  # a line's drawings (1 to 4 each) begin with one


@pytest.mark.parametrize("start", [None, 4.0])
def test_a_line_s_score_is_its_mean_log_probability_under_the_model(trained, start):
    """Of the characters drawn (after the first, which a start temperature chose) and the
    newline, by the LSTM read over the whole song (--no-counts: the LSTM alone)."""
    more = ["--start-temperature", start] if start else []
    (song,) = songs(trained / "best.pt", "--lines", 3, "--line-length", "4-6", "--candidates", 3,
                    "--no-counts", "--seed", 0, *more)
    saved = checkpoint.load(trained / "best.pt")
    text = "\n" + "".join(line["text"] + "\n" for line in song["lines"])  # warmed up on "\n"
    ids = torch.tensor([saved.vocab.encode(text, "error")])
    with torch.no_grad():
        logp = torch.log_softmax(saved.build_model().eval()(ids[:, :-1])[0][0].double(), -1)
    begin = 1  # where the line starts in `text`
    for line in song["lines"]:
        end = begin + len(line["text"])  # its newline
        drawn = range(begin + (start is not None), end + 1)
        expected = sum(logp[i - 1, ids[0, i]].item() for i in drawn) / len(drawn)
        assert line["score"] == pytest.approx(expected, rel=1e-4), line
        begin = end + 1


def covered(line: str) -> float:
    """The share of the line's Han characters inside a word of the dictionary, by trying every
    run of the line (spaces apart) against it; other characters beside Han ones count as
    outside words."""
    others = sum(not rhyme.is_han(c) for token in line.split()
                 if any(rhyme.is_han(c) for c in token) for c in token)
    line = line.replace(" ", "")
    dictionary = words.dictionary()
    inside = {k for i in range(len(line)) for j in range(i + 2, len(line) + 1)
              if line[i:j] in dictionary for k in range(i, j)}
    han = [k for k, c in enumerate(line) if rhyme.is_han(c)]
    return sum(k in inside for k in han) / (len(han) + others)


@pytest.mark.parametrize("rarity, weight, ending", [(0.0, 0.0, 0.0), (3.0, 0.0, 0.0),
                                                    (0.0, 4.0, 0.0), (0.0, 0.0, 2.0)])
def test_the_kept_candidate_is_the_best_by_score_rarity_words_and_ending(trained, rarity, weight,
                                                                      ending, monkeypatch):
    """The first line's candidates (no earlier line, no rhyme: no faults) as drawn; the one
    kept is the best by score + rarity x mean -log(count / total) of its characters + words x
    the share of it in dictionary words + ending x log p(newline) where it ended, that last
    recomputed here by the LSTM alone (--no-counts)."""
    draws, original = [], songwriter.draw_line

    def draw_line(*args):
        draws.append(original(*args))
        return draws[-1]

    monkeypatch.setattr(songwriter, "draw_line", draw_line)
    (song,) = songs(trained / "best.pt", "--lines", 1, "--line-length", "4-6", "--candidates",
                    8, "--rarity", rarity, "--words", weight, "--ending", ending, "--seed", 0,
                    "--no-counts")
    saved = checkpoint.load(trained / "best.pt")
    vocab, model = saved.vocab, saved.build_model()
    total = sum(vocab.counts)
    surprisal = {c: math.log(total / n) for c, n in zip(vocab.chars, vocab.counts)}
    (draw,) = draws
    texts = draw.texts
    for text, end in zip(texts, draw.ends):
        with torch.no_grad():
            logits = model(torch.tensor([vocab.encode("\n" + text)]))[0][0, -1]
        assert float(end) == pytest.approx(
            torch.log_softmax(logits.double(), -1)[vocab.index["\n"]].item(), abs=1e-4)

    def judged(j: int, weights: tuple[float, float, float]) -> float:
        rare = [surprisal[c] for c in texts[j] if not c.isspace()]
        return (float(draw.scores[j]) + weights[0] * sum(rare) / len(rare)
                + weights[1] * covered(texts[j]) + weights[2] * float(draw.ends[j]))

    assert len(set(texts)) > 1
    best = max(range(8), key=lambda j: judged(j, (rarity, weight, ending)))
    assert song["lines"][0]["text"] == texts[best]
    if rarity or weight or ending:  # this weight keeps another line here: the test tells
        assert best != max(range(8), key=lambda j: judged(j, (0.0, 0.0, 0.0)))


def test_a_prefix_line_counts_as_the_first(trained):
    (song,) = songs(trained / "best.pt", "--prefix", "分开", "--lines", 3, "--line-length", 6,
                    "--seed", 4)
    assert len(song["lines"]) == 3 and song["lines"][0]["text"].startswith("分开")
    assert song["prefix_used"] + song["text"] == "\n".join(x["text"] for x in song["lines"])


def test_the_song_preset_and_options_that_win_over_it(trained):
    preset = ROOT / "configs" / "song.toml"
    (song,) = songs(trained / "best.pt", "--config", preset, "--seed", 0)
    assert len(song["lines"]) == 8
    assert all(7 <= chars(line["text"]) <= 9 for line in song["lines"])
    assert rhyme_pairs_hold(song["lines"], "AABB")
    assert all(line["copied"] < 6 for line in song["lines"])
    (short,) = songs(trained / "best.pt", "--config", preset, "--lines", 2, "--seed", 0)
    assert len(short["lines"]) == 2


def test_plain_output_is_the_lyrics_alone(trained):
    result = cli("sample", "--checkpoint", trained / "best.pt", "--lines", 3, "--line-length",
                 5, "--seed", 1)
    assert result.exit_code == 0, result.output
    lines = result.stdout.rstrip("\n").split("\n")
    assert len(lines) == 3 and all(chars(line) == 5 for line in lines)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_keyword_is_placed_and_the_form_kept(trained, seed):
    for args, scheme, lengths in [
        (["--lines", 6, "--line-length", "5-8", "--rhyme", "AABB", "--keywords", "月光,海边"],
         "AABB", (5, 8)),
        (["--acrostic", "分开心跳", "--line-length", "6-9", "--rhyme", "XAXA",
          "--keywords", "街角,回忆,天空"], "XAXA", (6, 9)),
    ]:
        for song in songs(trained / "best.pt", *args, "--candidates", 4, "--num-samples", 3,
                          "--seed", seed):
            lines = [line["text"] for line in song["lines"]]
            for keyword in args[args.index("--keywords") + 1].split(","):
                assert any(keyword in line.replace(" ", "") for line in lines), lines
            assert all(lengths[0] <= chars(line) <= lengths[1] for line in lines), lines
            assert rhyme_pairs_hold(song["lines"], scheme), lines
            if "--acrostic" in args:
                assert [line[0] for line in lines] == list("分开心跳")


@pytest.mark.parametrize("args, phrases", [
    (["--lines", 2, "--keywords", "月光,海边,街角"], ["--keywords", "3 keywords for 2 lines"]),
    (["--lines", 2, "--line-length", 3, "--keywords", "月光海边"], ["'月光海边' does not fit"]),
    (["--lines", 2, "--keywords", "月光,,"], ["--keywords", "parted by commas"]),
    (["--lines", 2, "--keywords", "月Q"], ["--keywords", "'Q' not in the model's vocabulary"]),
    (["--keywords", "月光"], ["--keywords", "give --lines"]),
])
def test_keywords_that_cannot_be_placed_are_one_line_and_exit_2(trained, args, phrases):
    assert_one_line_error(cli("sample", "--checkpoint", trained / "best.pt", *args), 2, *phrases)


def test_a_line_s_words_are_its_han_characters_inside_dictionary_words():
    assert {"态度", "你好", "月光"} <= words.dictionary() and "光态" not in words.dictionary()
    assert words.coverage("态度") == 1.0
    assert words.coverage("月光态度") == 1.0
    assert words.coverage("你好 baby") == 1.0  # a word of letters on its own is no stray
    assert words.coverage("h态度") == pytest.approx(2 / 3)  # a letter glued to Han characters
    assert words.coverage("月光〗态") == pytest.approx(2 / 4)
    assert words.coverage("baby") == 0.0


# --- locked lines and the other candidates (the page's redraw) ----------------------------------

def writer_for(run: Path) -> tuple[songwriter.Songwriter, Vocab]:
    saved = checkpoint.load(run / "best.pt")
    return songwriter.Songwriter(saved.build_model(), saved.vocab), saved.vocab


def request(vocab: Vocab, seed: int, **given) -> songwriter.SongRequest:
    from lyricgen.config import SampleConfig
    form = make_form(6, "5-7", "AABBCC", None, None)
    return songwriter.SongRequest([vocab.index["\n"]], "", form, SampleConfig(
        lines=6, line_length="5-7", rhyme="AABBCC", candidates=6, seed=seed),
        torch.Generator().manual_seed(seed), **given)


def test_locked_lines_stay_as_given_and_bind_the_rhyme_of_their_letter(trained):
    """Lines 2 and 4 (0-based 1 and 3) locked, hand-written: they stand as written, line 1 (A)
    rhymes with locked line 2 though it comes before it, line 3 (B) with locked line 4, and the
    lines after them keep the form."""
    writer, vocab = writer_for(trained)
    locked = {1: "我在窗外的花", 3: "风吹过来的光"}
    for seed in range(3):
        (song,) = writer.write(request(vocab, seed, locked=locked))
        texts = [line.text for line in song]
        assert texts[1] == locked[1] and texts[3] == locked[3]
        assert song[0].rhyme == rhyme.line_key(locked[1]) == "发花"
        assert song[2].rhyme == rhyme.line_key(locked[3]) == "江阳"
        assert song[4].rhyme == song[5].rhyme is not None
        assert all(5 <= chars(t) <= 7 for i, t in enumerate(texts) if i not in locked)


def test_a_locked_line_conditions_the_lines_after_it_like_a_prefix_would(trained):
    """Locking the first line draws the rest exactly as a prefix of that line does: the same
    state, the same random stream."""
    writer, vocab = writer_for(trained)
    first = "我在窗外的花"
    (locked,) = writer.write(request(vocab, 7, locked={0: first}))
    prefixed = request(vocab, 7)
    prefixed.prefix_ids = [vocab.index["\n"]] + vocab.encode(first + "\n", "skip")
    prefixed.prefix_text = first + "\n"
    (song,) = writer.write(prefixed)
    assert [line.text for line in locked] == [line.text for line in song]


def test_each_line_keeps_its_other_candidates_best_first_when_asked(trained):
    writer, vocab = writer_for(trained)
    (plain,) = writer.write(request(vocab, 4))
    (song,) = writer.write(request(vocab, 4, others=True))
    assert [line.text for line in song] == [line.text for line in plain]  # asking changes nothing
    assert all(not line.others for line in plain)
    assert any(line.others for line in song)
    for line in song:
        assert line.text not in line.others and len(set(line.others)) == len(line.others) <= 5
    assert "others" not in plain[0].to_dict() and song[0].to_dict()["others"] == song[0].others


@pytest.mark.parametrize("locked, phrase", [({6: "我在窗外的花"}, "not one of the lines"),
                                            ({2: "a\nb"}, "one line of text")])
def test_a_locked_line_outside_the_song_or_of_two_lines_is_refused(trained, locked, phrase):
    writer, vocab = writer_for(trained)
    with pytest.raises(songwriter.LyricgenError, match=phrase):
        writer.write(request(vocab, 0, locked=locked))


def test_a_line_kept_against_the_repeat_rule_is_said(trained):
    """Drawn greedily every candidate is the same line, so a song of two lines repeats it: the
    writer says so rather than breaking the README's rule silently."""
    from lyricgen.config import SampleConfig
    writer, vocab = writer_for(trained)
    notes = []
    form = make_form(2, "3", None, None, None)
    (song,) = writer.write(songwriter.SongRequest(
        [vocab.index["\n"]], "", form, SampleConfig(lines=2, line_length="3", greedy=True,
                                                    repetition_penalty=1.0, words=0.0),
        None, warn=notes.append))
    assert song[0].text == song[1].text
    assert notes == ["line 2 repeats an earlier line: none of 32 candidates did better "
                     "(raise --temperature or --candidates)"]


def test_sample_says_on_stderr_when_a_line_repeats_against_the_rule(trained):
    """An acrostic of one character three times, lines of one character: every line is that
    character, so lines 2 and 3 repeat line 1, and the sampler says so."""
    result = cli("sample", "--checkpoint", trained / "best.pt", "--acrostic", "光光光",
                 "--line-length", 1, "--rhyme", "AAA")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["光"] * 3
    assert [line.split(":")[0] for line in result.stderr.splitlines()] == \
        ["warning", "warning"]
    assert "line 2 repeats an earlier line" in result.stderr
    assert "line 3 repeats an earlier line" in result.stderr
