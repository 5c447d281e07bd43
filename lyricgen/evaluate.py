"""Mean cross-entropy of a model over a held-out stream, the LSTM state carried through it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lyricgen.batching import AdjacentBatches
from lyricgen.models.lm import CharLM


@torch.no_grad()
def evaluate(model: CharLM, ids: torch.Tensor, batch_size: int, num_steps: int) -> float:
    """Mean loss per character over `ids` laid out as up to `batch_size` rows (every position
    after a row's first is predicted once; the state runs through each row from its start)."""
    rows = max(1, min(batch_size, len(ids) // 2))
    batches = AdjacentBatches(ids, rows, num_steps, model.head.weight.device, drop_last=False)
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=model.head.weight.device)
    count, state = 0, None
    for i in range(len(batches)):
        X, Y = batches.batch(i)  # (rows, T)
        logits, state = model(X, state)  # (rows, T, V)
        total += F.cross_entropy(logits.flatten(0, 1), Y.flatten(), reduction="sum")
        count += Y.numel()
    model.train(was_training)
    return total.item() / count
