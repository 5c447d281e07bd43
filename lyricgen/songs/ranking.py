"""Which of a line's candidates is kept. One that repeats a line of the text, copies the corpus
(where the copy guard had to let a copy through) or misses a rhyme the masks could not enforce
(text without Han characters rhymes by word) is kept only if no candidate does better in a few
rounds of drawing. Of the rest the best score wins: the mean log-probability per character
under the model itself (temperature 1, no masks; with a start temperature, of the characters
after the first), less NOVELTY times the share of its bigrams that the text, or the line
itself, already has (fluency not bought by repeating: "哈哈哈哈哈" is all words), plus `words`
times the share of its Han characters inside words of a general dictionary (words.py: lines
made of words, which a corpus of lyrics is too small to teach), `ending` times the
log-probability of its newline where it ended (lines that end where the model would end them,
not cut to fit a form), and `rarity` times its characters' mean surprisal in the corpus,
-log(count / total) (less generic lines: MMI reranking, Li et al. 2016).
"""

from __future__ import annotations

from dataclasses import dataclass

from lyricgen.songs import rhyme, words
from lyricgen.config import SampleConfig
from lyricgen.songs.line_draw import Draw

NOVELTY = 2.0  # a candidate's score loses this times the share of its bigrams seen before


@dataclass(order=True)
class Candidate:
    """A drawn line judged: its faults by name, then its score; the least is the best."""

    copied: bool  # the guard let a copy through
    missed_rhyme: bool
    repeated: bool  # a line the text already has
    cost: float  # minus the score above
    index: int  # its stream among the song's K
    text: str  # the whole line (the prefix's part of it included)
    logp: float | None  # the model's mean log-probability of it (None: not drawn)

    @property
    def faulty(self) -> bool:
        return self.copied or self.missed_rhyme or self.repeated


def ranked(draw: Draw, s: int, K: int, partial: str, earlier: list[str], key: str | None,
           cfg: SampleConfig, surprisal: dict[str, float]) -> list[Candidate]:
    """Sample s's K candidates (continuing `partial`), best first, after `earlier` lines, whose
    rhyme key must be `key` (None: any)."""
    song_bigrams = {b for line in earlier for b in zip(line, line[1:])}
    candidates = []
    for j in range(K):
        text = (partial + draw.texts[s * K + j]).rstrip()
        bigrams = list(zip(text, text[1:]))
        repeated = sum(b in song_bigrams or b in bigrams[:k]
                       for k, b in enumerate(bigrams)) / max(len(bigrams), 1)
        score = float(draw.scores[s * K + j]) - NOVELTY * repeated
        rare = [surprisal[c] for c in text if not c.isspace()]
        score += cfg.rarity * sum(rare) / max(len(rare), 1)
        if cfg.words:
            score += cfg.words * words.coverage(text)
        score += cfg.ending * float(draw.ends[s * K + j])
        candidates.append(Candidate(bool(draw.copied[s * K + j]),
                                    key is not None and rhyme.line_key(text) != key,
                                    text in earlier, -score, j, text,
                                    float(draw.scores[s * K + j])))
    return sorted(candidates)
