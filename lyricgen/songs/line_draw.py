"""One line drawn by every stream at once, its hard rules masks on the logits, so that every
candidate meets them: the line's length (no newline before its fewest characters, only a
newline after its most), characters forced at given places (an acrostic's, a keyword's), no
space at its start or end or twice in a row, its rhyme (for a Han rhyme group the newline is
allowed only after a character of the group, and the line's last possible character must be
one; the first line of a letter, which sets the rhyme, ends in a character that has a group),
and no run of the corpus as long as the copy guard's (copies.py; where every character left
would copy, the copy is let through and reported). A repetition penalty (CTRL's) is optional.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lyricgen.songs import rhyme
from lyricgen.config import SampleConfig
from lyricgen.copies import GuardedStepper, without_copies
from lyricgen.sampler import pick_next
from lyricgen.data.vocab import Vocab


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
        total = sum(vocab.counts)  # each character's surprisal in the corpus
        self.surprisal = {c: math.log(total / max(n, 1)) for c, n in zip(vocab.chars, vocab.counts)}
        self.countable = ~self.space  # characters the repetition penalty may count
        self.countable[self.newline] = False

    def group(self, char: str) -> int:
        key = rhyme.char_key(char)
        return self.groups.index(key) if key in self.groups else -1


@dataclass
class Rules:
    """What line i of every stream must be."""

    low: int  # fewest characters (spaces apart)
    high: int  # most characters
    group: torch.Tensor  # (N,) the Han rhyme group it must end in: -1 none; -2 any (it sets it)
    forced: torch.Tensor  # (N, high) the id each place must hold, -1 where it is free


@dataclass
class Draw:
    """One line drawn by every stream."""

    texts: list[str]
    scores: torch.Tensor  # (N,) mean log-probability
    copied: torch.Tensor  # (N,) a run of the copy guard's length was let through
    ends: torch.Tensor  # (N,) the log-probability of the newline where each line ended
    saved: list[torch.Tensor]  # the stepper's columns as each stream ended its line


def draw_line(stepper, masks: VocabMasks, rules: Rules, partial: str, used: torch.Tensor,
              cfg: SampleConfig, generator: torch.Generator | None) -> Draw:
    """Every stream draws its line (continuing `partial`) up to its newline, under `rules`;
    `used`: (N, V) the characters the repetition penalty counts."""
    N, device = used.shape[0], used.device
    tail = partial.strip()
    n = torch.full((N,), sum(not c.isspace() for c in partial), device=device)  # characters
    after_space = torch.zeros(N, dtype=torch.bool, device=device)
    last_group = torch.full((N,), masks.group(tail[-1]) if tail else -1, device=device)
    ended = torch.zeros(N, dtype=torch.bool, device=device)
    logp_sum = torch.zeros(N, dtype=torch.float64, device=device)
    count = torch.zeros(N, device=device)
    copied = torch.zeros(N, dtype=torch.bool, device=device)
    ends = torch.zeros(N, dtype=torch.float64, device=device)
    guard = isinstance(stepper, GuardedStepper)
    penalty = cfg.penalty()
    saved = [t.clone() for t in stepper.columns()]
    drawn: list[torch.Tensor] = []
    logits = stepper.logits  # (N, V)
    while not ended.all():
        logp = torch.log_softmax(logits.float(), -1)  # the score: the model's own, unmasked
        adjusted = logits.float()
        if penalty != 1.0:  # CTRL's: divide positive logits, multiply negative
            penalised = torch.where(adjusted > 0, adjusted / penalty, adjusted * penalty)
            adjusted = torch.where(used, penalised, adjusted)
        allowed = _allowed(masks, rules, n, after_space, last_group)
        if guard:
            allowed = without_copies(allowed, stepper.forbidden)
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


def _allowed(masks: VocabMasks, rules: Rules, n: torch.Tensor, after_space: torch.Tensor,
             last_group: torch.Tensor) -> torch.Tensor:
    """(N, V): what each stream may draw next. n: its line's characters so far (spaces
    apart); after_space: its last draw was a space; last_group: the rhyme group of its last
    character."""
    N, V = n.shape[0], masks.space.shape[0]
    low, high, group = rules.low, rules.high, rules.group
    rhymes = (group == -1) | (last_group == group) | ((group == -2) & (last_group >= 0))
    places = torch.arange(high, device=n.device)
    owed = ((rules.forced >= 0) & (places >= n[:, None])).any(1)  # forced places still ahead
    can_end = (n >= low) & ~after_space & rhymes & ~owed
    full = n >= high
    allowed = torch.ones(N, V, dtype=torch.bool, device=n.device)
    allowed[:, masks.space] = ((n > 0) & ~after_space & ~full)[:, None]  # inner spaces only
    allowed[:, masks.newline] = can_end
    last = (n == high - 1) & (group != -1)  # the line's last character: one that rhymes
    if last.any():
        keyed = masks.group_of >= 0
        allowed[last] &= torch.where((group[last] >= 0)[:, None],
                                     masks.in_group[group[last].clamp(min=0)], keyed)
    forced = rules.forced.gather(1, n.clamp(max=high - 1)[:, None])[:, 0]
    now = (forced >= 0) & ~full  # this place holds a forced character: it alone
    if now.any():
        allowed[now] = False
        allowed[now, forced[now]] = True
    if full.any():
        allowed[full] = False
        allowed[full, masks.newline] = True
    return allowed
