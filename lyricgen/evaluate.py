"""Loss of a model over a held-out stream, the state carried through it, in three stages
that each read the stream in its order, a part at a time:

1. the LSTM's outputs and log p(y) (`lstm_rows`: rows read side by side, put back in order);
2. optionally the training text's counts mixed in (`CountStream`, counts/mixing.py);
3. optionally a memory of the part of the stream already seen: its lines sung again
   (counts/line_repeats.py, in a text of lines), a continuous cache (counts/cache.py), then
   its exact repeats (counts/repeats.py).

Stages 2 and 3 learn their weights as they read (counts/prequential.py): the figures are
never tuned on themselves.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from lyricgen.counts.cache import CacheMixture
from lyricgen.counts.line_repeats import LineRepeatStream
from lyricgen.counts.mixing import CountMixture
from lyricgen.counts.prequential import StreamStage
from lyricgen.counts.repeats import RepeatStream
from lyricgen.models.charlm import CharLM
from lyricgen.counts.text_counts import TextCounts, with_line_ends

ROW_CHARS = 1024  # about the targets each row scores (lstm_rows)
WARM = 256  # the characters each row reads before them, for its state
GROUP_ROWS = 32  # rows the LSTM reads side by side


@dataclass
class Evaluation:
    loss: float  # mean cross-entropy per character: the model (with the counts, if given)
    cache_loss: float | None = None  # the same with the lines, the cache and the repeats
    lstm_loss: float | None = None  # the LSTM alone, when counts were mixed in
    count_weights: list[list[float]] | None = None  # the counts' learned weights per level, order


@torch.inference_mode()
def evaluate(model: CharLM, ids: torch.Tensor, num_steps: int, cache: bool = False,
             counts: TextCounts | None = None, newline: int | None = None) -> Evaluation:
    """Every position after the stream's first is predicted once, with the state carried
    through the stream; the counts and the cache score it in windows of `num_steps`. With
    the cache, a `newline` (the line break's id) brings the lines sung again before it."""
    device = model.head.weight.device
    ids = ids.long()
    count_stream = CountStream(counts, ids, device) if counts is not None else None
    cache_mixture = CacheMixture(1, device) if cache else None
    repeats = RepeatStream(ids, device) if cache else None
    lines = LineRepeatStream(ids, newline, device) if cache and newline is not None else None
    total = torch.zeros((), dtype=torch.float64, device=device)  # -sum log p(y): the model
    lstm_total = torch.zeros_like(total)  # the LSTM alone, with counts
    cache_total = torch.zeros_like(total)  # with the lines, the cache and the repeats
    done = 0  # the targets scored so far
    # 1. The LSTM: outputs (for the cache; else None), log p(y), targets, log p(\n) (for the
    # counts with its line ends; else None): (1, S, H), (1, S) x 3
    line_break = counts.newline if counts is not None and counts.joined is not None else None
    for h, logp_y, y, logp_end in lstm_rows(model, ids, num_steps, cache, line_break):
        if count_stream is not None:  # 2. the counts mixed in
            _subtract_by_window(lstm_total, logp_y, num_steps)
            logp_y = count_stream.mix(logp_y, num_steps, logp_end)
        _subtract_by_window(total, logp_y, num_steps)
        if cache_mixture is not None:  # 3. the lines sung again, the cache, the repeats
            logp_lines = lines.mix(logp_y, num_steps) if lines is not None else logp_y
            logp_cached = repeats.mix(cache_mixture.read(h, y, logp_lines, num_steps), num_steps)
            _subtract_by_window(cache_total, logp_cached, num_steps)
        done += y.shape[1]
    evaluation = Evaluation(total.item() / done)
    if cache_mixture is not None:
        evaluation.cache_loss = cache_total.item() / done
    if count_stream is not None:
        evaluation.lstm_loss = lstm_total.item() / done
        evaluation.count_weights = count_stream.mixture.weights()
    return evaluation


def _subtract_by_window(total: torch.Tensor, logp_y: torch.Tensor, num_steps: int) -> None:
    """total -= sum log p(y), one window's sum at a time (the order the figures are summed in)."""
    for window in logp_y.split(num_steps, 1):
        total -= window.sum()


def lstm_rows(model: CharLM, ids: torch.Tensor, num_steps: int, outputs_too: bool,
              also: int | None = None) -> Iterator[tuple[torch.Tensor | None, ...]]:
    """The LSTM's outputs (1, S, H) (with `outputs_too`, else None), log p(target) (1, S),
    targets (1, S) and log p(`also`) (1, S) (else None) over the stream, a part of it at a
    time in its order: the rows of `overlapping_rows`, GROUP_ROWS of them side by side (faster
    per character than one long row, whose every step reads all of W_hh for one character)."""
    device = model.head.weight.device
    # Rows of a whole number of windows: the stream's windows never straddle two parts.
    rows, scored = overlapping_rows(ids, num_steps * -(-ROW_CHARS // num_steps), WARM)
    was_training = model.training
    model.eval()
    projection = model.input_projection()
    for first in range(0, len(rows), GROUP_ROWS):
        group = rows[first: first + GROUP_ROWS].to(device)
        mine = scored[first: first + GROUP_ROWS].to(device)
        outputs, logps, logps_also, state = [], [], [], None
        width = mine.shape[1]
        for start in range(0, width, num_steps):
            end = min(start + num_steps, width)
            X, Y = group[:, start: end], group[:, start + 1: end + 1]
            features, state = model.features(X, state, projection)  # (G, T, H)
            # The output layer only where a target is scored (not in warm-ups and padding).
            keep = mine[:, start: end]
            logp = torch.log_softmax(model.logits(features[keep]), -1,
                                     dtype=_at_least_float32(features.dtype))  # (kept, V)
            logp_y = logp.new_zeros(keep.shape)
            logp_y[keep] = logp.gather(1, Y[keep].unsqueeze(-1)).squeeze(-1)
            if outputs_too:
                outputs.append(features)
            if also is not None:
                logps_also.append(logp_y.clone())
                logps_also[-1][keep] = logp[:, also]
            logps.append(logp_y)  # (G, T)
        # Row-major, the scored positions of consecutive rows are the stream's own order.
        yield (torch.cat(outputs, 1)[mine][None] if outputs_too else None,
               torch.cat(logps, 1)[mine][None], group[:, 1:][mine][None],
               torch.cat(logps_also, 1)[mine][None] if also is not None else None)
    model.train(was_training)


def overlapping_rows(ids: torch.Tensor, length: int, warm: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The stream as rows to read side by side: row r scores the targets 1 + r L .. (r + 1) L
    of the stream (L = `length`) after reading the `warm` characters before them, which bring
    its state to what one long row would have there (the LSTM alone scores the same to 4
    digits; benchmarks/RESULTS.md). The rows' ids (R, W + 1), padded with 0 at the end, and
    which of each row's W targets it scores (R, W)."""
    n = len(ids) - 1  # targets
    R = max(1, -(-n // length))
    starts = (torch.arange(R) * length - warm).clamp(min=0)  # each row's first id
    width = warm + length if R > 1 else n
    index = starts[:, None] + torch.arange(width + 1)  # (R, W + 1)
    rows = torch.where(index < len(ids), ids[index.clamp(max=len(ids) - 1)], 0)
    first = torch.arange(R) * length - starts  # the first scored target of each row
    j = torch.arange(width)
    scored = (j >= first[:, None]) & (j < first[:, None] + length) & (index[:, 1:] < len(ids))
    return rows, scored


class CountStream(StreamStage):
    """Stage 2: the counts' mixture with the LSTM (mixing.py): the LSTM's log p(y) in, with
    its log p(\n) for the counts with its line ends (text_counts.py), the mixture's out."""

    def __init__(self, counts: TextCounts, ids: torch.Tensor, device: torch.device):
        stream = ids.to(device)
        p, levels = counts.target_probs(stream)
        # each expert's p(y) at each target (experts, 1, N), the level of order n (1, N)
        self.p_counts, self.levels = p[:, None], levels[None]
        self.plain = counts.order - 1  # the experts before those with the LSTM's line ends
        self.ends = stream[1:] == counts.newline  # (N,): the targets that are line breaks
        self.mixture = CountMixture(1, counts.order, len(p), device)

    def _read(self, logp: torch.Tensor, at: slice, logp_end: torch.Tensor | None = None
              ) -> torch.Tensor:
        p = self.p_counts[:, :, at]
        if logp_end is not None:
            ends = with_line_ends(p[self.plain:], self.ends[at], logp_end.double().exp())
            p = torch.cat([p[:self.plain], ends])
        return self.mixture.read(logp, p, self.levels[:, at])


def _at_least_float32(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def perplexity(loss: float) -> float:
    """exp(mean cross-entropy); inf rather than an overflow for a loss beyond float range."""
    return math.exp(loss) if loss < 709 else math.inf
