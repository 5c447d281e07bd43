"""Songs written line by line in a form (form.py): every line drawn as `candidates` streams at
once, the best of them kept.

While a line is drawn, its hard constraints are masks on the logits, so every candidate meets
them: the line's length (no newline before its fewest characters, only a newline after its
most), its acrostic character, no space at its start or end or twice in a row, its rhyme
(for a Han rhyme group the newline is allowed only after a character of the group, and the
line's last possible character must be one; the first line of a letter, which sets the
rhyme, ends in a character that has a group), and no run of the corpus as long as the copy
guard's (copies.py; where every character left would copy, the copy is let through). The
candidates are then judged: one that repeats a line of the song, copies the corpus or misses a
rhyme the masks could not enforce (text without Han characters rhymes by word) is kept only if
no candidate does better in a few rounds of drawing. Of the rest the best score wins: the mean
log-probability per character under the model itself (temperature 1, no masks; with a start
temperature, of the characters after the first), less NOVELTY times the share of its bigrams
the song already has (fluency not bought by repeating the song), plus `rarity` times its
characters' mean surprisal in the training text, -log(count / total): lines less generic
(MMI reranking, Li et al. 2016), plus `words` times the share of its Han characters inside
words of a general dictionary (words.py): lines made of words, which a corpus of lyrics is
too small to teach. A repetition penalty (CTRL's) is optional.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from lyricgen import rhyme, words
from lyricgen.config import SampleConfig
from lyricgen.copies import CopyIndex, GuardedStepper, guarded
from lyricgen.errors import LyricgenError
from lyricgen.form import FREE, Form
from lyricgen.models.charlm import CharLM
from lyricgen.mixing import Counts, MixedStepper, make_stepper
from lyricgen.models.fast.stepper import Stepper
from lyricgen.sampler import pick_next
from lyricgen.vocab import Vocab

ROUNDS = 4  # drawings of a line before a candidate that misses a soft rule is taken
NOVELTY = 2.0  # a candidate's score loses this times the share of its bigrams the song has


@dataclass
class Line:
    text: str
    rhyme: str | None  # its rhyme key (rhyme.py)
    copied: int | None  # its longest run of characters the corpus holds (None: unknown)
    score: float | None  # mean log-probability of its drawn characters and newline (above)


class VocabMasks:
    """Per-character facts the masks are made of, for one vocabulary."""

    def __init__(self, vocab: Vocab, device: torch.device):
        self.chars, self.index = vocab.chars, vocab.index
        self.newline = vocab.index["\n"]
        self.space = torch.tensor([c.isspace() and c != "\n" for c in vocab.chars], device=device)
        self.groups = sorted({k for k in map(rhyme.char_key, vocab.chars) if k is not None})
        group_ids = [self.groups.index(k) if (k := rhyme.char_key(c)) else -1 for c in vocab.chars]
        self.group_of = torch.tensor(group_ids, device=device)  # (V,), -1: no group
        self.in_group = torch.stack([self.group_of == g for g in range(len(self.groups))]) \
            if self.groups else torch.zeros(0, len(vocab), dtype=torch.bool, device=device)
        total = sum(vocab.counts)  # each character's surprisal in the training text
        self.surprisal = {c: math.log(total / max(n, 1)) for c, n in zip(vocab.chars, vocab.counts)}
        self.plain = ~self.space  # characters the repetition penalty may count
        self.plain[self.newline] = False

    def group(self, char: str) -> int:
        key = rhyme.char_key(char)
        return self.groups.index(key) if key in self.groups else -1


@dataclass
class Draw:
    """One line drawn by every stream."""

    texts: list[str]
    scores: torch.Tensor  # (N,) mean log-probability
    copied: torch.Tensor  # (N,) a run of the copy guard's length was let through
    ends: torch.Tensor  # (N,) the log-probability of the newline where each line ended
    saved: list[torch.Tensor]  # the stepper's columns as each stream ended its line


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
    used = torch.zeros(S * K, len(vocab), dtype=torch.bool, device=device)
    used[:, prefix_ids] = True
    used &= masks.plain
    for i in range(len(done), form.lines):
        if form.chars is not None and all(
                len("\n".join(x.text for x in song)) >= len(prefix_text) + form.chars
                for song in songs):
            break
        keys = [_required_key(form, i, song) for song in songs]
        start = [t.clone() for t in stepper.columns()]
        chosen = [None] * S
        for round_ in range(ROUNDS):
            if round_:
                for live, kept in zip(stepper.columns(), start):
                    live.copy_(kept)
            draw = _draw_line(stepper, masks, form, i, partial, keys, used, cfg, generator)
            for s in range(S):
                if chosen[s] is None or chosen[s][0] > 0:
                    best = _judge(draw, s, K, partial, songs[s], keys[s], cfg, masks.surprisal)
                    if chosen[s] is None or best[:2] < chosen[s][:2]:
                        chosen[s] = (*best, draw)
            if all(c[0] == 0 for c in chosen):
                break
        if any(c[0] >= 4 for c in chosen):
            raise LyricgenError(f"could not write line {i + 1} without copying {copies.n} "
                                f"characters of the corpus in {ROUNDS * K} tries; raise "
                                "--candidates or --max-copy")
        source = torch.tensor([s * K + c[2] for s in range(S) for c in [chosen[s]]
                               for _ in range(K)], device=device)
        for s, (_, _, j, draw) in enumerate(chosen):
            text = (partial + draw.texts[s * K + j]).rstrip()
            songs[s].append(line_of(text, copies, float(draw.scores[s * K + j])))
            if s == 0 and on_line is not None:
                on_line(songs[s][-1])
            for live, kept in zip(stepper.columns(), draw.saved):
                live[:, s * K:(s + 1) * K] = kept[:, s * K + j, None]
        used = used[source]
        for s in range(S):
            used[s * K:(s + 1) * K, vocab.encode(songs[s][-1].text, "skip")] = True
        used &= masks.plain
        partial = ""
    return songs


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


def _draw_line(stepper: Stepper | MixedStepper, masks: VocabMasks, form: Form, i: int, partial: str,
               keys: list[str | None], used: torch.Tensor, cfg: SampleConfig,
               generator: torch.Generator | None) -> Draw:
    """Every stream draws line i (continuing `partial`) up to its newline."""
    N, device = used.shape[0], used.device
    K = N // len(keys)
    low, high = form.length(i)
    # (N,) the Han rhyme group a stream's line must end in: -1 for none (or a word rhyme); -2
    # for any, when the line's letter has no rhyme yet (the line sets it)
    lettered = form.letter(i) != FREE and bool(masks.groups)
    group = torch.tensor([masks.groups.index(k) if k in masks.groups else
                          -2 if k is None and lettered else -1 for k in keys
                          for _ in range(K)], device=device)
    tail = partial.strip()
    n = torch.full((N,), sum(not c.isspace() for c in partial), device=device)  # characters
    after_space = torch.zeros(N, dtype=torch.bool, device=device)
    last_group = torch.full((N,), masks.group(tail[-1]) if tail else -1, device=device)
    first = masks.index[form.acrostic[i]] if form.acrostic and not tail else None
    ended = torch.zeros(N, dtype=torch.bool, device=device)
    logp_sum = torch.zeros(N, dtype=torch.float64, device=device)
    count = torch.zeros(N, device=device)
    copied = torch.zeros(N, dtype=torch.bool, device=device)
    ends = torch.zeros(N, dtype=torch.float64, device=device)
    guard = isinstance(stepper, GuardedStepper)
    saved = [t.clone() for t in stepper.columns()]
    drawn: list[torch.Tensor] = []
    logits = stepper.logits  # (N, V)
    while not ended.all():
        logp = torch.log_softmax(logits.float(), -1)  # the score: the model's own, unmasked
        adjusted = logits.float()
        if cfg.repetition_penalty != 1.0:  # CTRL's: divide positive logits, multiply negative
            penalised = torch.where(adjusted > 0, adjusted / cfg.repetition_penalty,
                                    adjusted * cfg.repetition_penalty)
            adjusted = torch.where(used, penalised, adjusted)
        allowed = _allowed(masks, n, after_space, last_group, group, low, high, first)
        if guard:  # where every character left would copy, one may
            clean = allowed & ~stepper.forbidden
            allowed = torch.where(clean.any(1, keepdim=True), clean, allowed)
        ids = pick_next(adjusted.masked_fill(~allowed, float("-inf")), cfg, generator, n == 0)
        live = ~ended
        if guard:
            copied |= live & stepper.forbidden.gather(1, ids[:, None])[:, 0]
        ids = torch.where(live, ids, masks.newline)  # ended streams idle on newlines
        scored = live & (n > 0) if cfg.start_temperature is not None else live
        logp_sum += torch.where(scored, logp.gather(1, ids[:, None])[:, 0].double(), 0.0)
        count += scored
        ends = torch.where(live & (ids == masks.newline), logp[:, masks.newline].double(), ends)
        drawn.append(torch.where(live, ids, -1))
        space, newline = masks.space[ids], ids == masks.newline
        n += live & ~space & ~newline
        after_space = torch.where(live, space, after_space)
        last_group = torch.where(live & ~space & ~newline, masks.group_of[ids], last_group)
        now_ended = live & newline
        logits = stepper.step(ids)
        if now_ended.any():  # keep each stream's state as its line ends
            for keep, column in zip(saved, stepper.columns()):
                keep[:, now_ended] = column[:, now_ended]
        ended |= now_ended
    rows = torch.stack(drawn, 1).tolist()  # (N, steps): ids, the newline, then -1
    texts = ["".join(masks.chars[c] for c in row if c >= 0).rstrip("\n") for row in rows]
    return Draw(texts, logp_sum / count.clamp(min=1), copied, ends, saved)


def _allowed(masks: VocabMasks, n: torch.Tensor, after_space: torch.Tensor,
             last_group: torch.Tensor, group: torch.Tensor, low: int, high: int,
             first: int | None) -> torch.Tensor:
    """(N, V): what each stream may draw next. n: its line's characters so far (spaces
    apart); after_space: its last draw was a space; last_group: the rhyme group of its last
    character; group: the group its line must end in (-1: none); first: the acrostic's id."""
    N, V = n.shape[0], masks.space.shape[0]
    rhymes = (group == -1) | (last_group == group) | ((group == -2) & (last_group >= 0))
    can_end = (n >= low) & ~after_space & rhymes
    full = n >= high
    allowed = torch.ones(N, V, dtype=torch.bool, device=n.device)
    allowed[:, masks.space] = ((n > 0) & ~after_space & ~full)[:, None]  # inner spaces only
    allowed[:, masks.newline] = can_end
    last = (n == high - 1) & (group != -1)  # the line's last character: one that rhymes
    if last.any():
        keyed = masks.group_of >= 0
        allowed[last] &= torch.where((group[last] >= 0)[:, None],
                                     masks.in_group[group[last].clamp(min=0)], keyed)
    if full.any():
        allowed[full] = False
        allowed[full, masks.newline] = True
    if first is not None:
        start = n == 0
        allowed[start] = False
        allowed[start, first] = True
    return allowed


def _judge(draw: Draw, s: int, K: int, partial: str, song: list[Line], key: str | None,
           cfg: SampleConfig, surprisal: dict[str, float]) -> tuple[int, float, int]:
    """The best of sample s's K candidates: (faults, -score, index); faults weigh a copy the
    guard let through 4, a missed rhyme 2, a line repeated within the song 1."""
    earlier = {line.text for line in song}
    song_bigrams = {b for line in song for b in zip(line.text, line.text[1:])}
    best = None
    for j in range(K):
        text = (partial + draw.texts[s * K + j]).rstrip()
        faults = (4 * bool(draw.copied[s * K + j])
                  + 2 * (key is not None and rhyme.line_key(text) != key)
                  + (text in earlier))
        bigrams = list(zip(text, text[1:]))
        repeated = sum(b in song_bigrams for b in bigrams) / max(len(bigrams), 1)
        score = float(draw.scores[s * K + j]) - NOVELTY * repeated
        rare = [surprisal[c] for c in text if not c.isspace()]
        score += cfg.rarity * sum(rare) / max(len(rare), 1)
        if cfg.words:
            score += cfg.words * words.coverage(text)
        score += cfg.ending * float(draw.ends[s * K + j])
        judged = (faults, -score, j)
        best = judged if best is None or judged < best else best
    return best
