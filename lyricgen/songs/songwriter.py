"""Text written a line at a time: songs in a form (form.py), and free text ranked line by line.
Every line is drawn as `candidates` streams at once under its hard rules (line_draw.py), and
the best of them is kept (ranking.py); keywords (keywords.py) ride on some candidates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from lyricgen.songs import rhyme
from lyricgen.config import SampleConfig
from lyricgen.copies import CopyIndex, guarded
from lyricgen.errors import LyricgenError
from lyricgen.songs.form import FREE, Form
from lyricgen.songs.keywords import Plan
from lyricgen.songs.line_draw import Draw, Rules, VocabMasks, draw_line
from lyricgen.counts.mixing import Counts, make_stepper
from lyricgen.models.charlm import CharLM
from lyricgen.songs.ranking import Verdict, best_candidate
from lyricgen.data.vocab import Vocab

ROUNDS = 4  # drawings of a line before a candidate that misses a soft rule is taken


@dataclass
class Line:
    text: str
    rhyme: str | None  # its rhyme key (rhyme.py)
    copied: int | None  # its longest run of characters the corpus holds (None: unknown)
    score: float | None  # mean log-probability of its drawn characters and newline


@torch.inference_mode()
def write_songs(model: CharLM, vocab: Vocab, prefix_ids: list[int], prefix_text: str,
                form: Form, cfg: SampleConfig, generator: torch.Generator | None,
                copies: CopyIndex | None, counts: Counts | None = None,
                on_line: Callable[[Line], None] | None = None) -> list[list[Line]]:
    """`cfg.num_samples` songs in `form`, each continuing `prefix_text` (whose ids, or a newline
    for an empty prefix, warm the model up): the lines of each song. `counts`: mixed with the
    LSTM; `copies`: the corpus, guarded against (when its `n` is set) and reported on;
    `on_line` sees each line of the first song as it is written."""
    model.eval()
    device = model.head.weight.device
    S, K = cfg.num_samples, cfg.candidates
    _, state = model(torch.tensor([prefix_ids], device=device))  # (L, 1, H) each
    stepper = guarded(make_stepper(model, tuple(s.expand(-1, S * K, -1) for s in state),
                                   prefix_ids, counts), copies, prefix_ids)
    masks = VocabMasks(vocab, device)
    *done, partial = prefix_text.split("\n")
    songs = [[line_of(t, copies) for t in done] for _ in range(S)]
    plan = Plan(form.keywords, form.lines, S)
    used = torch.zeros(S * K, len(vocab), dtype=torch.bool, device=device)
    used[:, prefix_ids] = True
    used &= masks.plain
    for i in range(len(done), form.lines):
        if form.chars is not None and all(
                len("\n".join(x.text for x in song)) >= len(prefix_text) + form.chars
                for song in songs):
            break
        keys = [_required_key(form, i, song) for song in songs]
        rules = _rules(form, i, partial, keys, K, masks, plan)
        start = [t.clone() for t in stepper.columns()]
        chosen: list[tuple[Verdict, Draw] | None] = [None] * S
        for round_ in range(ROUNDS):
            if round_:
                for live, kept in zip(stepper.columns(), start):
                    live.copy_(kept)
            draw = draw_line(stepper, masks, rules, partial, used, cfg, generator)
            for s in range(S):
                if chosen[s] is None or chosen[s][0].faulty:
                    verdict = best_candidate(draw, s, K, partial, [x.text for x in songs[s]],
                                             keys[s], cfg, masks.surprisal)
                    if chosen[s] is None or verdict < chosen[s][0]:
                        chosen[s] = (verdict, draw)
            if not any(verdict.faulty for verdict, _ in chosen):
                break
        if any(verdict.copied for verdict, _ in chosen):
            raise LyricgenError(f"could not write line {i + 1} without copying {copies.n} "
                                f"characters of the corpus in {ROUNDS * K} tries; raise "
                                "--candidates or --max-copy")
        source = torch.tensor([s * K + verdict.index for s, (verdict, _) in enumerate(chosen)
                               for _ in range(K)], device=device)
        for s, (verdict, draw) in enumerate(chosen):
            j = s * K + verdict.index
            text = (partial + draw.texts[j]).rstrip()
            songs[s].append(line_of(text, copies, float(draw.scores[j])))
            plan.note(s, text)
            if s == 0 and on_line is not None:
                on_line(songs[s][-1])
            for live, kept in zip(stepper.columns(), draw.saved):
                live[:, s * K:(s + 1) * K] = kept[:, j, None]
        used = used[source]
        for s in range(S):
            used[s * K:(s + 1) * K, vocab.encode(songs[s][-1].text, "skip")] = True
        used &= masks.plain
        partial = ""
    if any(placed < len(form.keywords) for placed in plan.placed):
        raise LyricgenError(f"--keywords: could not place {', '.join(form.keywords)} in "
                            f"{form.lines} lines; give longer lines or fewer keywords")
    return songs


def _rules(form: Form, i: int, partial: str, keys: list[str | None], K: int,
           masks: VocabMasks, plan: Plan) -> Rules:
    """Line i's rules for every song's K streams, whose rhyme keys must be `keys`."""
    low, high = form.length(i)
    N, device = len(keys) * K, masks.space.device
    # the Han rhyme group each stream's line must end in: -1 for none (or a word rhyme); -2
    # for any, when the line's letter has no rhyme yet (the line sets it)
    lettered = form.letter(i) != FREE and bool(masks.groups)
    group = torch.tensor([masks.groups.index(k) if k in masks.groups else
                          -2 if k is None and lettered else -1 for k in keys
                          for _ in range(K)], device=device)
    forced = torch.full((N, high), -1, device=device)
    begun = sum(not c.isspace() for c in partial)  # places the prefix's line already holds
    if form.acrostic and not begun:
        forced[:, 0] = masks.index[form.acrostic[i]]
    first = max(begun, 1 if form.acrostic else 0)
    for s in range(len(keys)):
        if (due := plan.due(s, i)) is not None:
            plan.force(forced, s, K, [masks.index[c] for c in due[0]], due[1], first)
    return Rules(low, high, group, forced)


def line_of(text: str, copies: CopyIndex | None, score: float | None = None) -> Line:
    """A line described: its rhyme key, how much of it the corpus holds, its score."""
    return Line(text, rhyme.line_key(text), copies.longest(text) if copies else None, score)


def _required_key(form: Form, i: int, song: list[Line]) -> str | None:
    """The rhyme key line i must have: that of the first earlier line of its letter."""
    letter = form.letter(i)
    if letter == FREE:
        return None
    if letter == "A" and form.rhyme_with is not None:
        return form.rhyme_with
    return next((line.rhyme for j, line in enumerate(song)
                 if form.letter(j) == letter and line.rhyme is not None), None)
