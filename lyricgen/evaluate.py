"""Loss of a model over a held-out stream, the LSTM state carried through it; optionally with
the training text's counts mixed in (mixing.py), and with a continuous cache over the part of
the stream already seen.

The cache (after Grave et al., 2017, "Improving neural language models with a continuous
cache") remembers, for each of the last `window` positions, the LSTM output h_i there and the
character that followed it. At position t it puts probability on the characters that followed
positions whose h_i is most like h_t (cosine similarity, sharpened by theta):

    p_cache(y) = sum_i softmax_i(theta * cos(h_t, h_i)) [x_{i+1} = y]
    p(y)       = (1 - lambda) p_model(y) + lambda p_cache(y)

Lyrics repeat lines within a song, which is what a cache exploits. theta and lambda are not
tuned on the figure reported: each (theta, lambda) on a small grid, and the model alone, is an
expert in a Bayesian mixture whose weights come from how well each predicted the characters
already seen, so the cache learns its own settings as it reads.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lyricgen.counts.mixing import CountMixture
from lyricgen.models.charlm import CharLM
from lyricgen.counts.ngram import NGram, histories, longest_in

CACHE_WINDOW = 4096
ROW_CHARS = 1024  # about the targets each row scores (lstm_rows)
WARM = 256  # the characters each row reads before them, for its state
GROUP_ROWS = 32  # rows the LSTM reads side by side
CACHE_BLOCK = 256  # about the positions the cache reads at once (whole windows)

THETAS = (5.0, 10.0, 20.0, 40.0)  # each twice the one before (CacheMixture.read uses it)
LAMBDAS = (0.1, 0.25, 0.5)


@dataclass
class Evaluation:
    loss: float  # mean cross-entropy per character: the model (with the counts, if given)
    cache_loss: float | None = None  # the same with the continuous cache
    lstm_loss: float | None = None  # the LSTM alone, when counts were mixed in
    count_weights: list[float] | None = None  # the counts' learned weight per level


@torch.inference_mode()
def evaluate(model: CharLM, ids: torch.Tensor, num_steps: int, cache: bool = False,
             counts: NGram | None = None) -> Evaluation:
    """Every position after the stream's first is predicted once, with the state carried
    through the stream: the LSTM reads it in rows side by side (`lstm_rows`), and its outputs,
    put back in the stream's order, are scored as one stream, in windows of `num_steps`, where
    the counts (mixing.py) and the cache learn their weights as they read."""
    device = model.head.weight.device
    ids = ids.long()
    total = torch.zeros((), dtype=torch.float64, device=device)
    lstm_total = torch.zeros((), dtype=torch.float64, device=device)
    cache_mixture = CacheMixture(1, device) if cache else None
    if counts is not None:  # the counts' p(y) and level at every target of the stream (1, N)
        count_mixture = CountMixture(1, counts.order, device)
        stream = ids[None].to(device)
        contexts = counts.contexts(histories(stream, counts.order).flatten(0, 1))  # (N, n)
        p_counts = counts.prob_in(contexts, stream[0, 1:])[None]
        levels = longest_in(contexts)[None]
    done = 0  # the targets scored so far
    for features, logp_y, y in lstm_rows(model, ids, num_steps, cache):  # (1, S, H), (1, S) x 2
        mixed = []
        for start in range(0, y.shape[1], num_steps):
            lp = logp_y[:, start: start + num_steps]
            if counts is not None:
                lstm_total -= lp.sum()
                at = slice(done + start, done + start + lp.shape[1])
                lp = count_mixture.read(lp, p_counts[:, at], levels[:, at],
                                        torch.ones_like(lp, dtype=torch.bool))  # all scored
            total -= lp.sum()
            mixed.append(lp)
        if cache_mixture is not None:  # a few windows at a time: larger products run faster
            lp, block = torch.cat(mixed, 1), num_steps * max(1, CACHE_BLOCK // num_steps)
            for start in range(0, y.shape[1], block):
                part = slice(start, start + block)
                cache_mixture.read(features[:, part], y[:, part], lp[:, part], num_steps)
        done += y.shape[1]
    evaluation = Evaluation(total.item() / done)
    if cache_mixture is not None:
        evaluation.cache_loss = cache_mixture.loss / done
    if counts is not None:
        evaluation.lstm_loss = lstm_total.item() / done
        evaluation.count_weights = count_mixture.weights()
    return evaluation


def lstm_rows(model: CharLM, ids: torch.Tensor, num_steps: int, outputs_too: bool
              ) -> Iterator[tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]]:
    """The LSTM's outputs (1, S, H) (with `outputs_too`, else None), log p(target) (1, S) and
    targets (1, S) over the stream, a part of it at a time in its order: the rows of
    `overlapping_rows`, GROUP_ROWS of them side by side (faster per character than one long
    row, whose every step reads all of W_hh for one character)."""
    device = model.head.weight.device
    # Rows of a whole number of windows: the stream's windows never straddle two parts.
    rows, scored = overlapping_rows(ids, num_steps * -(-ROW_CHARS // num_steps), WARM)
    was_training = model.training
    model.eval()
    projection = model.input_projection()
    for first in range(0, len(rows), GROUP_ROWS):
        group = rows[first: first + GROUP_ROWS].to(device)
        mine = scored[first: first + GROUP_ROWS].to(device)
        outputs, logps, state = [], [], None
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
            logps.append(logp_y)  # (G, T)
        # Row-major, the scored positions of consecutive rows are the stream's own order.
        yield (torch.cat(outputs, 1)[mine][None] if outputs_too else None,
               torch.cat(logps, 1)[mine][None], group[:, 1:][mine][None])
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


def _at_least_float32(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


class CacheMixture:
    """The continuous cache of each row and the Bayesian mixture over its settings.

    The experts are (theta, lambda) pairs, theta-major, after the model alone; the attention
    over the memory depends on theta only, so it is computed once per theta, in the features'
    precision (the mixture's log-probabilities are summed in float64).
    """

    def __init__(self, rows: int, device: torch.device):
        self.lambdas = torch.tensor(LAMBDAS, device=device, dtype=torch.float64)
        num_experts = len(THETAS) * len(LAMBDAS) + 1  # expert 0: the model alone
        self.log_evidence = torch.full((num_experts, rows), -math.log(num_experts),
                                       dtype=torch.float64, device=device)
        # The memory: unit vectors h_i (R, slots, H) and the characters after them (R, slots),
        # in the stream's order; slots [start, end) in use. Older ones are dropped by moving
        # the last CACHE_WINDOW to the front when a block would not fit.
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None
        self.start = self.end = 0
        self.loss = 0.0
        self._unseen_for, self._unseen = None, None  # the last mask and what it was made for

    def read(self, h: torch.Tensor, y: torch.Tensor, logp_y: torch.Tensor, window: int) -> None:
        """Score the block's targets `y` (R, T) given the model's log p(y) and outputs `h`,
        then remember them. The block is whole windows of `window` positions (the last may be
        shorter): a position sees the CACHE_WINDOW positions before its window and those of its
        window before its own."""
        R, T, H = h.shape
        h = F.normalize(h.to(_at_least_float32(h.dtype)), dim=-1)
        self._remember(h, y)
        keys = self.keys[:, self.start: self.end]  # (R, M + T, H): the memory, then the block
        values = self.values[:, self.start: self.end]
        M = keys.shape[1] - T
        # softmax(theta cos) over the seen keys, for each theta: weights exp(theta (cos - 1))
        # (cos <= 1: no overflow; >= e^(-2 theta): none vanish in float32), 0 where unseen,
        # computed once for the first theta and squared for each next, THETAS doubling.
        weights = (h @ keys.transpose(1, 2)).sub_(1).mul_(THETAS[0])  # (R, T, M + T)
        weights = weights.masked_fill_(self._unseen_keys(M, T, window), -math.inf).exp_()
        hit = (values.unsqueeze(1) == y.unsqueeze(2)).to(weights.dtype)  # key's next: the target
        p_cache, tiny = [], torch.finfo(weights.dtype).tiny
        for k in range(len(THETAS)):
            if k:
                weights.mul_(weights)
            p_cache.append(torch.linalg.vecdot(weights, hit) / weights.sum(-1).clamp(min=tiny))
        p_cache = torch.stack(p_cache).double()  # (thetas, R, T); 0 with no memory yet
        p_cache = p_cache.repeat_interleave(len(LAMBDAS), dim=0)  # (K - 1, R, T)
        steps = torch.arange(T, device=h.device)
        lam = self.lambdas.repeat(len(THETAS))[:, None, None] * (M + steps > 0)  # no memory yet:
        p_model = logp_y.double().exp()  # the model alone
        log_p = torch.cat([logp_y.double().unsqueeze(0),
                           torch.log((1 - lam) * p_model + lam * p_cache)])  # (K, R, T)
        # Each expert's weight at step t: its prior times its likelihood of everything before t.
        before = self.log_evidence.unsqueeze(-1) + log_p.cumsum(-1) - log_p  # (K, R, T)
        log_mix = torch.logsumexp(before + log_p, 0) - torch.logsumexp(before, 0)
        self.loss -= log_mix.sum().item()
        self.log_evidence += log_p.sum(-1)

    def _remember(self, h: torch.Tensor, y: torch.Tensor) -> None:
        """Append the block after the memory, keeping up to CACHE_WINDOW positions before it."""
        (R, T, H), kept = h.shape, min(self.end - self.start, CACHE_WINDOW)
        if self.keys is None or self.end + T > self.keys.shape[1]:  # move the memory forward
            slots = 2 * CACHE_WINDOW + T
            keys, values = h.new_empty(R, slots, H), y.new_empty(R, slots)
            if self.keys is not None:
                keys[:, :kept] = self.keys[:, self.end - kept: self.end]
                values[:, :kept] = self.values[:, self.end - kept: self.end]
            self.keys, self.values, self.end = keys, values, kept
        self.keys[:, self.end: self.end + T], self.values[:, self.end: self.end + T] = h, y
        self.start, self.end = self.end - kept, self.end + T

    def _unseen_keys(self, M: int, T: int, window: int) -> torch.Tensor:
        """(T, M + T): the keys each position of the block may not use: its own and later
        ones, and those more than CACHE_WINDOW before its window (the same for every full
        block, so kept)."""
        if self._unseen_for != (M, T, window):
            device = self.keys.device
            i = torch.arange(T, device=device)[:, None]
            j = torch.arange(M + T, device=device)
            window_start = M + i // window * window  # its slot
            self._unseen = (j >= M + i) | (j < window_start - CACHE_WINDOW)
            self._unseen_for = (M, T, window)
        return self._unseen


def perplexity(loss: float) -> float:
    """exp(mean cross-entropy); inf rather than an overflow for a loss beyond float range."""
    return math.exp(loss) if loss < 709 else math.inf
