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
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lyricgen.mixing import CountMixture
from lyricgen.models.charlm import CharLM
from lyricgen.ngram import NGram, histories, longest_in

CACHE_WINDOW = 4096
ROW_CHARS = 16_384  # the targets each row scores (overlapping_rows)
WARM = 256  # the characters each row reads before them, for its state

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
    through the stream; rows of it are read side by side (`overlapping_rows`). With `counts`,
    the model is the LSTM mixed with them (mixing.py)."""
    device = model.head.weight.device
    rows, scored = (t.to(device) for t in overlapping_rows(ids.long(), ROW_CHARS, WARM))
    R, width = scored.shape
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    lstm_total = torch.zeros((), dtype=torch.float64, device=device)
    cache_mixture = CacheMixture(R, device) if cache else None
    if counts is not None:  # the counts' p(y) and level at every target of the rows (R, W)
        count_mixture = CountMixture(R, counts.order, device)
        contexts = counts.contexts(histories(rows, counts.order).flatten(0, 1))  # (R W, n)
        p_counts = counts.prob_in(contexts, rows[:, 1:].reshape(-1)).view(R, -1)
        levels = longest_in(contexts).view(R, -1)
    state = None
    for start in range(0, width, num_steps):
        window = slice(start, min(start + num_steps, width))
        X, Y, mask = rows[:, window], rows[:, start + 1: window.stop + 1], scored[:, window]
        features, state = model.features(X, state)  # (R, T, H)
        logits = model.logits(features)  # (R, T, V)
        logp = torch.log_softmax(logits, -1, dtype=_at_least_float32(logits.dtype))
        logp_y = logp.gather(2, Y.unsqueeze(-1)).squeeze(-1)  # (R, T)
        if counts is not None:
            lstm_total -= logp_y[mask].sum()
            logp_y = count_mixture.read(logp_y, p_counts[:, window], levels[:, window],
                                        mask)
        total -= logp_y[mask].sum()
        if cache_mixture is not None:
            cache_mixture.read(features, Y, logp_y, mask)
    model.train(was_training)
    count = int(scored.sum())
    evaluation = Evaluation(total.item() / count)
    if cache_mixture is not None:
        evaluation.cache_loss = cache_mixture.loss / count
    if counts is not None:
        evaluation.lstm_loss = lstm_total.item() / count
        evaluation.count_weights = count_mixture.weights()
    return evaluation


def overlapping_rows(ids: torch.Tensor, length: int, warm: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The stream as rows to read side by side (a batch runs the LSTM about twice as fast per
    character as one long row): row r scores the targets 1 + r L .. (r + 1) L of the stream
    (L = `length`) after reading the `warm` characters before them, which bring its state to
    what one long row would have there (the LSTM alone scores the same to 4 digits). Each row
    has its own cache and its own mixtures, which start afresh at its start (on a 30,000-
    character held-out text in two rows the figures moved by 0.04%; benchmarks/RESULTS.md).
    The rows' ids (R, W + 1), padded with 0 at the end, and which of each row's W targets it
    scores (R, W)."""
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
        self.keys: torch.Tensor | None = None  # (R, M, H) unit vectors
        self.values: torch.Tensor | None = None  # (R, M) the character after each key
        self.loss = 0.0

    def read(self, h: torch.Tensor, y: torch.Tensor, logp_y: torch.Tensor,
             scored: torch.Tensor) -> None:
        """Score the window's targets `y` (R, T) given the model's log p(y) and outputs `h`
        (those in `scored` count; the others only join the memory), then remember the
        window."""
        R, T, _ = h.shape
        h = F.normalize(h.to(_at_least_float32(h.dtype)), dim=-1)
        keys = h if self.keys is None else torch.cat([self.keys, h], dim=1)  # (R, M + T, H)
        values = y if self.values is None else torch.cat([self.values, y], dim=1)
        M = keys.shape[1] - T
        cos = h @ keys.transpose(1, 2)  # (R, T, M + T)
        # Position t may use keys up to its own predecessor (their next character is seen).
        steps = torch.arange(T, device=h.device)
        seen = torch.arange(M + T, device=h.device) < (M + steps)[:, None]  # (T, M + T)
        hit = (values.unsqueeze(1) == y.unsqueeze(2)) & seen  # key's next char is the target
        # softmax(theta cos) over the seen keys, for each theta: weights exp(theta (cos - 1))
        # (cos <= 1: no overflow; >= e^(-2 theta): none vanish in float32), computed once for
        # the first theta and squared for each next, THETAS doubling.
        weights = torch.exp(THETAS[0] * (cos - 1)) * seen  # (R, T, M + T)
        p_cache, tiny = [], torch.finfo(weights.dtype).tiny
        for k in range(len(THETAS)):
            if k:
                weights = weights * weights
            p_cache.append((weights * hit).sum(-1) / weights.sum(-1).clamp(min=tiny))
        p_cache = torch.stack(p_cache).double()  # (thetas, R, T); 0 with no memory yet
        p_cache = p_cache.repeat_interleave(len(LAMBDAS), dim=0)  # (K - 1, R, T)
        lam = self.lambdas.repeat(len(THETAS))[:, None, None] * seen.any(-1)  # no memory yet:
        p_model = logp_y.double().exp()  # the model alone
        log_p = torch.cat([logp_y.double().unsqueeze(0),
                           torch.log((1 - lam) * p_model + lam * p_cache)])  # (K, R, T)
        log_p = torch.where(scored, log_p, 0.0)  # the targets not scored are no evidence
        # Each expert's weight at step t: its prior times its likelihood of everything before t.
        before = self.log_evidence.unsqueeze(-1) + log_p.cumsum(-1) - log_p  # (K, R, T)
        log_mix = torch.logsumexp(before + log_p, 0) - torch.logsumexp(before, 0)
        self.loss -= log_mix[scored].sum().item()
        self.log_evidence += log_p.sum(-1)
        self.keys, self.values = keys[:, -CACHE_WINDOW:], values[:, -CACHE_WINDOW:]


def perplexity(loss: float) -> float:
    """exp(mean cross-entropy); inf rather than an overflow for a loss beyond float range."""
    return math.exp(loss) if loss < 709 else math.inf
