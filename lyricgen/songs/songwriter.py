"""Text written a line at a time: songs in a form (form.py), and free text ranked line by line.
Every line is drawn as `candidates` streams at once under its hard rules (line_draw.py), and
the best of them is kept (ranking.py); keywords (keywords.py) ride on some candidates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

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
from lyricgen.songs.ranking import Candidate, ranked
from lyricgen.data.vocab import Vocab

ROUNDS = 4  # drawings of a line before a candidate that misses a soft rule is taken


@dataclass
class Line:
    text: str
    rhyme: str | None  # its rhyme key (rhyme.py)
    copied: int | None  # its longest run of characters the corpus holds (None: unknown)
    score: float | None  # mean log-probability of its drawn characters and newline
    others: list[str] = field(default_factory=list)  # the other candidates, best first (asked)

    def to_dict(self) -> dict[str, Any]:
        """The line in `sample --json` (the other candidates only when asked for)."""
        return {k: v for k, v in asdict(self).items() if k != "others" or v}


@dataclass
class SongRequest:
    """What to write: songs in `form` continuing `prefix_text` (whose ids, or a newline for an
    empty prefix, warm the model up), drawn with `cfg` from `generator`'s stream. `locked`:
    lines (by index) every song keeps as given, the lines around them drawn in the form after
    them and rhyming with them; `others`: keep each line's other candidates; `warn`: told of a
    line kept though it repeats an earlier one or misses its rhyme (no candidate did better)."""
    prefix_ids: list[int]
    prefix_text: str
    form: Form
    cfg: SampleConfig
    generator: torch.Generator | None = None
    locked: dict[int, str] = field(default_factory=dict)
    others: bool = False
    warn: Callable[[str], None] | None = None  # told when a line breaks a soft rule


@dataclass
class Songwriter:
    """A model and what its checkpoint holds for drawing, shared read-only by the requests:
    `counts` mixed with the LSTM; `copies`, the corpus, guarded against (when its `n` is set)
    and reported on."""
    model: CharLM
    vocab: Vocab
    copies: CopyIndex | None = None
    counts: Counts | None = None

    @torch.inference_mode()
    def write(self, request: SongRequest, on_line: Callable[[Line], None] | None = None
              ) -> list[list[Line]]:
        """`cfg.num_samples` songs: the lines of each. `on_line` sees each line of the first
        song as it is written."""
        r, cfg, form, vocab, copies = request, request.cfg, request.form, self.vocab, self.copies
        self.model.eval()
        device = self.model.head.weight.device
        S, K = cfg.num_samples, cfg.candidates
        _, state = self.model(torch.tensor([r.prefix_ids], device=device))  # (L, 1, H) each
        stepper = guarded(make_stepper(self.model, tuple(s.expand(-1, S * K, -1) for s in state),
                                       r.prefix_ids, self.counts), copies, r.prefix_ids)
        masks = VocabMasks(vocab, device)
        *done, partial = r.prefix_text.split("\n")
        _check_locked(r, len(done), bool(partial))
        songs = [[line_of(t, copies) for t in done] for _ in range(S)]
        plan = Plan(form.keywords, form.lines, S)
        used = torch.zeros(S * K, len(vocab), dtype=torch.bool, device=device)
        used[:, r.prefix_ids] = True
        used &= masks.countable
        for i in range(len(done), form.lines):
            if form.chars is not None and all(
                    len("\n".join(x.text for x in song)) >= len(r.prefix_text) + form.chars
                    for song in songs):
                break
            if i in r.locked:
                ranks = [[Candidate(False, False, False, 0.0, 0, r.locked[i], None)]] * S
                for c in vocab.encode(r.locked[i] + "\n", "skip"):
                    stepper.step(torch.full((S * K,), c, device=device))
                source = None
            else:
                ranks = self._draw(r, i, partial, songs, stepper, masks, plan, used)
                source = torch.tensor([s * K + rank[0].index for s, rank in enumerate(ranks)
                                       for _ in range(K)], device=device)
            for s, rank in enumerate(ranks):
                songs[s].append(line_of(rank[0].text, copies, rank[0].logp))
                if r.others:
                    songs[s][-1].others = list(dict.fromkeys(
                        c.text for c in rank[1:] if c.text != rank[0].text))
                plan.note(s, rank[0].text)
                if s == 0 and on_line is not None:
                    on_line(songs[s][-1])
            if source is not None:
                used = used[source]
            for s in range(S):
                used[s * K:(s + 1) * K, vocab.encode(songs[s][-1].text, "skip")] = True
            used &= masks.countable
            partial = ""
        if any(placed < len(form.keywords) for placed in plan.placed):
            raise LyricgenError(f"--keywords: could not place {', '.join(form.keywords)} in "
                                f"{form.lines} lines; give longer lines or fewer keywords")
        return songs

    def _draw(self, r: SongRequest, i: int, partial: str, songs: list[list[Line]], stepper,
              masks: VocabMasks, plan: Plan, used: torch.Tensor) -> list[list[Candidate]]:
        """Line i of every song drawn, in up to ROUNDS drawings until each song has a
        candidate without faults: each song's candidates, best first, its streams left where
        the best one ended."""
        cfg, K = r.cfg, r.cfg.candidates
        keys = [_required_key(r.form, i, song, r.locked) for song in songs]
        rules = _rules(r.form, i, partial, keys, K, masks, plan)
        start = [t.clone() for t in stepper.columns()]
        chosen: list[tuple[list[Candidate], Draw] | None] = [None] * len(songs)
        for round_ in range(ROUNDS):
            if round_:
                for live, kept in zip(stepper.columns(), start):
                    live.copy_(kept)
            draw = draw_line(stepper, masks, rules, partial, used, cfg, r.generator)
            for s, song in enumerate(songs):
                if chosen[s] is None or chosen[s][0][0].faulty:
                    rank = ranked(draw, s, K, partial, [x.text for x in song], keys[s], cfg,
                                  masks.surprisal)
                    if chosen[s] is None or rank[0] < chosen[s][0][0]:
                        chosen[s] = (rank, draw)
            if not any(rank[0].faulty for rank, _ in chosen):
                break
        if any(rank[0].copied for rank, _ in chosen):
            raise LyricgenError(f"could not write line {i + 1} without copying "
                                f"{self.copies.n} characters of the corpus in {ROUNDS * K} "
                                "tries; raise --candidates or --max-copy")
        if r.warn is not None:
            for s, (rank, _) in enumerate(chosen):
                if rank[0].repeated or rank[0].missed_rhyme:
                    what = "repeats an earlier line" if rank[0].repeated else "misses its rhyme"
                    song = f"song {s + 1}, " if len(chosen) > 1 else ""
                    r.warn(f"{song}line {i + 1} {what}: none of {ROUNDS * K} candidates "
                           "did better (raise --temperature or --candidates)")
        # Each song's streams all continue from its kept candidate's drawing.
        for s, (rank, draw) in enumerate(chosen):
            for live, kept in zip(stepper.columns(), draw.saved):
                live[:, s * K:(s + 1) * K] = kept[:, s * K + rank[0].index, None]
        return [rank for rank, _ in chosen]


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


def _required_key(form: Form, i: int, song: list[Line], locked: dict[int, str]) -> str | None:
    """The rhyme key line i must have: that of the first earlier line of its letter, or else
    of the first locked line of its letter (a locked line binds the lines before it too)."""
    letter = form.letter(i)
    if letter == FREE:
        return None
    if letter == "A" and form.rhyme_with is not None:
        return form.rhyme_with
    earlier = (line.rhyme for j, line in enumerate(song) if form.letter(j) == letter)
    later = (rhyme.line_key(text) for j, text in sorted(locked.items())
             if j > i and form.letter(j) == letter)
    return next((key for key in (*earlier, *later) if key is not None), None)


def _check_locked(request: SongRequest, prefix_lines: int, unfinished: bool) -> None:
    """Locked lines lie among the lines drawn, each one line of text."""
    for i, text in request.locked.items():
        if not prefix_lines + unfinished <= i < request.form.lines:
            raise LyricgenError(f"locked line {i + 1} is not one of the lines to write "
                                f"({prefix_lines + unfinished + 1} to {request.form.lines})")
        if "\n" in text or not text.strip():
            raise LyricgenError(f"locked line {i + 1} must be one line of text")
