"""A run the time limit cuts mid-epoch: the part of the epoch trained is validated, best.pt takes
it when it is better, and a resumed run still gives what an unbroken run gives."""

from __future__ import annotations

import io
import json
import math
import time

import pytest
import torch
from rich.console import Console

from conftest import QUIET, tiny_options
from lyricgen import checkpoint, tables
from lyricgen.commands.train import train
from lyricgen.data.corpus import load_corpus
from lyricgen.evaluate import Evaluation, evaluate, perplexity
from lyricgen.training import loop, validation

LIMIT_S = 1000.0  # the fake clock's seconds in the time limit


class Clock:
    """loop's `time`, whose monotonic clock stands still until `arm`ed, then reaches the
    deadline `batches` readings later (training reads it once per batch)."""

    def __init__(self):
        self.now = 0.0
        self.step = 0.0
        self.perf_counter = time.perf_counter

    def monotonic(self) -> float:
        self.now += self.step
        return self.now

    def arm(self, batches: int) -> None:
        self.now, self.step = LIMIT_S - batches, 1.0


def cut_in_epoch_2(monkeypatch, lyrics_file, out, losses):
    """A run whose validation gives `losses` (epoch 1, then the cut epoch) and whose time limit
    falls three batches into epoch 2."""
    clock, figures = Clock(), iter(losses)
    monkeypatch.setattr(loop, "time", clock)

    def fake_evaluate(*args, **kwargs):
        loss = next(figures)
        clock.arm(3)  # after epoch 1's validation: the limit three batches on
        return Evaluation(loss, lstm_loss=loss + 1, count_weights=[[loss]])  # told apart

    monkeypatch.setattr(validation, "evaluate", fake_evaluate)
    return train(None, tiny_options(lyrics_file, out, epochs=4, time_limit=LIMIT_S / 60),
                 **QUIET)


def rows(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_a_cut_epoch_no_better_than_the_last_leaves_best_pt_alone(lyrics_file, tmp_path,
                                                                  monkeypatch):
    result = cut_in_epoch_2(monkeypatch, lyrics_file, tmp_path / "run", [3.0, 3.5])
    cut = result.partial
    assert result.stop == "time limit" and len(result.history) == 1
    assert 1 < cut["epoch"] < 2 and cut["val_ppl"] == pytest.approx(math.exp(3.5))
    assert [r["epoch"] for r in rows(tmp_path / "run")] == [1, cut["epoch"]]
    best = checkpoint.load(tmp_path / "run" / "best.pt", training_state=True)
    last = checkpoint.load(tmp_path / "run" / "last.pt", training_state=True)
    assert (best.progress.epoch, best.progress.batch) == (1, 0) and result.best_epoch == 1
    batches = last.progress.batch  # the cut: three or four batches in (the spare time)
    assert last.progress.epoch == 1 and batches in (3, 4)
    assert last.progress.best_epoch == 1 and last.history == result.history  # not the cut row


def test_a_better_cut_epoch_is_best_pt(lyrics_file, tmp_path, monkeypatch):
    result = cut_in_epoch_2(monkeypatch, lyrics_file, tmp_path / "run", [3.0, 2.5])
    best = checkpoint.load(tmp_path / "run" / "best.pt", training_state=True)
    last = checkpoint.load(tmp_path / "run" / "last.pt")
    assert best.progress.epoch == 1 and best.progress.batch in (3, 4)
    assert all(torch.equal(best.model[k], last.model[k]) for k in best.model)
    assert result.best_epoch == best.progress.best_epoch == result.partial["epoch"]
    assert best.counts["weights"] == [[2.5]]  # those the cut epoch's validation learned
    console = Console(file=io.StringIO())
    tables.print_training_summary(result, console)
    share = f"{result.partial['epoch'] - 1:.0%}"
    title = " ".join(console.file.getvalue().split())  # the title wraps to the table's width
    assert title.startswith(f"training time limit: 1 epoch and {share} of the next, best at "
                            f"epoch {result.partial['epoch']} ")


def test_the_cut_epochs_figure_is_that_of_best_pt(lyrics_file, tmp_path):
    # A time limit that has passed after the first batch: the run stops there, and validates
    # it (test_train.py resumes such a run to an unbroken run's metrics, the cut row gone).
    stopped = train(None, tiny_options(lyrics_file, tmp_path / "run", time_limit=1e-9),
                    **QUIET)
    assert stopped.history == [] and 0 < stopped.partial["epoch"] < 1
    assert rows(tmp_path / "run") == [stopped.partial]
    saved = checkpoint.load(tmp_path / "run" / "best.pt")
    corpus = load_corpus(saved.config.data, progress=False)
    again = evaluate(saved.build_model(), corpus.val_ids, saved.config.train.num_steps,
                     counts=saved.count_model()[0])
    assert stopped.partial["val_ppl"] == pytest.approx(perplexity(again.loss), rel=1e-9)


def test_a_limit_reached_as_an_epoch_begins_is_not_validated_past_it(lyrics_file, tmp_path,
                                                                    monkeypatch):
    """Epoch 1's validation takes as long as the whole limit (a fake clock's 1000 s): epoch 2
    stops after its first batch, which is not worth validating, and best.pt stays epoch 1."""

    class SlowClock:  # validation.py's time: each reading 1000 s after the one before
        now = 0.0

        def perf_counter(self) -> float:
            self.now += LIMIT_S
            return self.now

    monkeypatch.setattr(validation, "time", SlowClock())
    result = cut_in_epoch_2(monkeypatch, lyrics_file, tmp_path / "run", [3.0, 2.5])
    assert result.stop == "time limit" and result.partial is None
    assert [r["epoch"] for r in rows(tmp_path / "run")] == [1]
    last = checkpoint.load(tmp_path / "run" / "last.pt", training_state=True)
    assert (last.progress.epoch, last.progress.batch, last.progress.best_epoch) == (1, 1, 1)
