"""Text from a model: the prefix is run once to build the state, then characters are drawn one
at a time (greedy, temperature, top-k, top-p), the state carried from step to step."""

from __future__ import annotations

from collections.abc import Callable

import torch

from lyricgen.config import SampleConfig
from lyricgen.copies import CopyIndex, GuardedStepper, guarded, without_copies
from lyricgen.counts.mixing import Counts, make_stepper
from lyricgen.models.charlm import CharLM
from lyricgen.data.vocab import UnknownPolicy, Vocab


def pick_next(logits: torch.Tensor, cfg: SampleConfig, generator: torch.Generator | None,
              line_start: torch.Tensor | None = None) -> torch.Tensor:
    """The next id of each row of `logits` (N, V) under the decoding settings: (N,).
    `line_start` (N,): the rows drawing a line's first character, which take
    `cfg.start_temperature` where it is set."""
    if cfg.greedy:
        return logits.argmax(dim=-1)
    if line_start is not None and cfg.start_temperature is not None:
        logits = logits / torch.where(line_start, cfg.start_temperature,
                                      cfg.temperature)[:, None]
    elif cfg.temperature != 1.0:
        logits = logits / cfg.temperature
    if cfg.top_k is not None and cfg.top_k < logits.shape[-1]:
        top = logits.topk(cfg.top_k, dim=-1)
        logits = torch.full_like(logits, float("-inf")).scatter(-1, top.indices, top.values)
    probs = torch.softmax(logits, dim=-1)
    if cfg.top_p is not None and cfg.top_p < 1.0:
        probs = top_p_filter(probs, cfg.top_p)
    return draw(probs, generator)


def draw(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One id per row of `probs` (N, V) by inverse CDF: the first id whose cumulative
    probability exceeds u ~ U(0, total). Exact, and far cheaper than torch.multinomial for one
    draw; an id of probability 0 adds nothing to the sum, so it is never picked."""
    cdf = probs.cumsum(dim=-1, dtype=torch.float64)  # (N, V)
    u = torch.rand(cdf.shape[0], 1, generator=generator, dtype=cdf.dtype,
                   device=cdf.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(1)


def top_p_filter(probs: torch.Tensor, p: float) -> torch.Tensor:
    """Keep, per row, the smallest set of most likely ids whose mass reaches `p`; renormalise."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    keep = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, order, mass_before < p)
    kept = probs * keep
    return kept / kept.sum(dim=-1, keepdim=True)


@torch.inference_mode()
def generate(model: CharLM, prefix: list[int], cfg: SampleConfig,
             generator: torch.Generator | None = None,
             on_step: Callable[[torch.Tensor], None] | None = None, keep: bool = True,
             counts: Counts | None = None, guard: CopyIndex | None = None) -> list[list[int]]:
    """`cfg.num_samples` continuations of `prefix` (a non-empty list of ids), drawn as one batch;
    `on_step` sees each step's new ids (N,). `keep=False` keeps nothing (the ids went to
    `on_step`), so that any length fits in memory. `counts`: mixed with the LSTM; `guard`: no
    run of the corpus it indexes is written."""
    was_training = model.training
    model.eval()
    device = model.head.weight.device
    n = cfg.num_samples
    _, state = model(torch.tensor([prefix], device=device))  # the warm-up: (L, 1, H) each
    stepper = guarded(make_stepper(model, tuple(s.expand(-1, n, -1) for s in state), prefix,
                                   counts), guard, prefix)
    model.train(was_training)
    logits, out = stepper.logits, []
    guarding = isinstance(stepper, GuardedStepper)
    for t in range(cfg.length):
        if guarding:
            forbidden = stepper.forbidden  # (N, V)
            logits = logits.masked_fill(~without_copies(torch.ones_like(forbidden), forbidden),
                                        float("-inf"))
        ids = pick_next(logits, cfg, generator)  # (N,)
        if keep:
            out.append(ids)
        if on_step is not None:
            on_step(ids)
        if t + 1 < cfg.length:
            logits = stepper.step(ids)  # (N, V)
    if not out:
        return [[] for _ in range(n)]
    return torch.stack(out, dim=1).tolist()  # (N, length)


def start_ids(vocab: Vocab, prefix: str, unknown: UnknownPolicy,
              generator: torch.Generator | None) -> tuple[list[int], str]:
    """The ids the model is warmed up on, and the text they stand for.

    An empty prefix (or one emptied by `unknown="skip"`) starts from a newline when the vocab
    has one, else from a character drawn by its frequency in the training text.
    """
    ids = vocab.encode(prefix, unknown)
    if ids:
        return ids, vocab.decode(ids)
    if "\n" in vocab.index:
        return [vocab.index["\n"]], ""
    device = generator.device if generator is not None else "cpu"
    counts = torch.tensor([vocab.counts], dtype=torch.float64, device=device)  # (1, V)
    first = int(draw(counts, generator))  # draw() needs no normalised probabilities
    return [first], vocab.chars[first]
