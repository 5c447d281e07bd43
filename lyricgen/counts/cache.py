"""A continuous cache over the part of a held-out stream already seen (evaluate.py's third stage).

The cache (after Grave et al., 2017, "Improving neural language models with a continuous
cache") remembers, for each of the last `window` positions, the LSTM output h_i there and the
character that followed it. At position t it puts probability on the characters that followed
positions whose h_i is most like h_t (cosine similarity, sharpened by theta):

    p_cache(y) = sum_i softmax_i(theta * cos(h_t, h_i)) [x_{i+1} = y]
    p(y)       = (1 - lambda) p_model(y) + lambda p_cache(y)

Lyrics repeat lines within a song, which is what a cache exploits. theta and lambda are not
tuned on the figure reported: each (theta, lambda) on a small grid, and the model alone, is an
expert in a Bayesian mixture whose weights come from how well each predicted the characters
already seen (prequential.py), so the cache learns its own settings as it reads.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lyricgen.counts.prequential import Prequential

CACHE_WINDOW = 4096
CACHE_BLOCK = 256  # about the positions the cache reads at once (whole windows)

# Each theta twice the one before, by construction: the attention weights for the next theta
# are those of the one before, squared (CacheMixture._read_block).
THETAS = tuple(5.0 * 2 ** k for k in range(4))  # 5, 10, 20, 40
LAMBDAS = (0.1, 0.25, 0.5)


class CacheMixture:
    """The continuous cache of each row and the Bayesian mixture over its settings.

    The experts are (theta, lambda) pairs, theta-major, after the model alone; the attention
    over the memory depends on theta only, so it is computed once per theta, in the features'
    precision (the mixture's log-probabilities are summed in float64).
    """

    def __init__(self, rows: int, device: torch.device):
        self.lambdas = torch.tensor(LAMBDAS, device=device, dtype=torch.float64)
        self.mixture = Prequential(len(THETAS) * len(LAMBDAS) + 1, rows, device=device)
        # The memory: unit vectors h_i (R, slots, H) and the characters after them (R, slots),
        # in the stream's order; slots [start, end) in use. Older ones are dropped by moving
        # the last CACHE_WINDOW to the front when a block would not fit.
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None
        self.start = self.end = 0
        self._unseen_for, self._unseen = None, None  # the last mask and what it was made for

    def read(self, h: torch.Tensor, y: torch.Tensor, logp_y: torch.Tensor, window: int
             ) -> torch.Tensor:
        """The mixture's log p(y) (R, S) (float64) at the stream's next targets `y` (R, S),
        whole windows of `window` positions (the last may be shorter), given the model's log
        p(y) (R, S) and outputs `h` (R, S, H), remembering them; a few windows at a time, as
        larger products run faster."""
        block = window * max(1, CACHE_BLOCK // window)
        parts = [slice(start, start + block) for start in range(0, y.shape[1], block)]
        return torch.cat([self._read_block(h[:, p], y[:, p], logp_y[:, p], window)
                          for p in parts], 1)

    def _read_block(self, h: torch.Tensor, y: torch.Tensor, logp_y: torch.Tensor,
                    window: int) -> torch.Tensor:
        """`read` for a block (R, T): a position sees the CACHE_WINDOW positions before its
        window and those of its window before its own."""
        R, T, H = h.shape
        h = F.normalize(h.to(torch.promote_types(h.dtype, torch.float32)), dim=-1)
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
        return self.mixture.read(log_p)

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
