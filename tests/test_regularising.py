"""Regularisation measured as training goes (training/regularising.py): a held-out figure that
stalls while the training figure falls raises the strength a step, instead of halving the lr;
what was given stays; a resumed run and a second run with the same seed go alike."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import QUIET, tiny_options, without_timings
from lyricgen import checkpoint
from lyricgen.checkpoint import Progress
from lyricgen.commands.train import train
from lyricgen.evaluate import Evaluation
from lyricgen.training import validation
from lyricgen.training.schedule import Schedule

SIZED = ("dropout", "embedding_dropout", "weight_decay")


def at(s: float) -> dict[str, float]:
    """The settings of strength s, as sizing.py documents them."""
    return {"dropout": 0.1 + 0.55 * s, "embedding_dropout": 0.25 * s,
            "weight_decay": 0.01 * 30 ** s}


def free_options(data, out, **extra) -> dict:
    """A small run whose regularisation nothing pins (so the run sizes and raises it), with
    the plateau schedule."""
    options = tiny_options(data, out, **{"lr_schedule": "plateau", "plateau_patience": 1,
                                         **extra})
    return {k: v for k, v in options.items() if k not in SIZED or k in extra}


def stalling(monkeypatch, figures: list[float]) -> None:
    """Validation that gives `figures` (losses) in turn, whatever the network does."""
    values = iter(figures)
    monkeypatch.setattr(validation, "evaluate", lambda *args, **kwargs: Evaluation(next(values)))


def rows(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("progress, last_train_loss, expected", [
    # a stall while the training loss falls: memorising, so the strength rises
    (dict(strength=0.0, strengthening=["dropout"]), 2.5, "strengthen"),
    # a stall with the training loss rising is the lr's: it halves, as before
    (dict(strength=0.0, strengthening=["dropout"]), 3.1, "halve"),
    # nothing left to raise (at full strength, or all given): the lr halves
    (dict(strength=1.0, strengthening=["dropout"]), 2.5, "halve"),
    (dict(strength=0.0, strengthening=[]), 2.5, "halve"),
    # risen after epoch 2: epoch 3 does not judge yet
    (dict(strength=0.25, strengthening=["dropout"], strengthened_at=2), 2.5, "halve"),
])
def test_a_stall_raises_the_regularisation_only_while_training_improves(
        progress, last_train_loss, expected):
    schedule, p = Schedule("plateau", plateau_patience=1), Progress(**progress)
    decisions = []
    for epoch, (held_out, train_loss) in enumerate([(5.0, 3.0), (4.9, 2.8),
                                                    (5.5, last_train_loss)], start=1):
        decisions.append(schedule.end_of_epoch(p, epoch, held_out, train_loss))
        p.start_next_epoch(epoch, train_loss)
    assert not any(d.strengthen or d.halve_lr for d in decisions[:2])
    assert (decisions[2].strengthen, decisions[2].halve_lr) == (expected == "strengthen",
                                                               expected == "halve")


def test_a_run_that_stalls_while_it_learns_its_text_is_held_back_more(lyrics_file, tmp_path,
                                                                      monkeypatch):
    """Held-out figures that stall after epoch 1 while the tiny model fits its text better:
    the strength rises after epoch 3 (two epochs after the start) and after epoch 6 (three
    after the last rise: the first epochs at a new strength do not judge). (The lr is kept,
    for the training figure to fall; the halving is the unit test's above.)"""
    stalling(monkeypatch, [2.0, 2.1, 2.2, 2.3, 2.4, 2.5])
    lines = []
    result = train(None, free_options(lyrics_file, tmp_path / "run", epochs=6, lr=0.003,
                                      lr_schedule="none"), log=lines.append, progress_bar=False)
    history = result.history
    # the premise: training fits its text better at the epochs that judge
    assert history[2]["train_ppl"] < history[1]["train_ppl"]
    assert history[5]["train_ppl"] < history[4]["train_ppl"]
    start = history[0]["strength"]
    assert start < 0.5  # the rule's choice for a wide model read 6 times: room for 2 rises
    assert [r["strength"] for r in history] == pytest.approx([start] * 3 + [start + 0.25] * 3)
    assert [r["lr"] for r in history] == [0.003] * 6
    raised = [i for i, line in enumerate(lines) if line.startswith("held-out figure stalled")]
    rows = [i for i, line in enumerate(lines) if line.startswith("epoch ")]
    assert raised == [rows[2] + 1, rows[5] + 1]  # each after the row of its epoch
    final = at(start + 0.5)
    assert lines[raised[-1]] == (
        "held-out figure stalled while the training figure fell: regularisation raised to "
        f"dropout {final['dropout']:.2f}, embedding dropout {final['embedding_dropout']:.2f}, "
        f"weight decay {final['weight_decay']:.3g}")
    # the checkpoint keeps the settings in force: a resumed run trains with them
    saved = checkpoint.load(tmp_path / "run" / "last.pt", training_state=True)
    got = (saved.config.model.dropout, saved.config.model.embedding_dropout,
           saved.config.train.weight_decay)
    assert got == pytest.approx(tuple(final.values()), abs=1e-3)
    assert saved.optimizer["param_groups"][0]["weight_decay"] == saved.config.train.weight_decay
    assert saved.progress.strength == pytest.approx(start + 0.5)
    model = saved.build_model()
    assert (model.drop.p, model.embedding_drop.p) == pytest.approx(got[:2])


def test_what_was_given_is_never_raised(lyrics_file, tmp_path, monkeypatch):
    stalling(monkeypatch, [2.0, 2.1, 2.2])
    lines = []
    train(None, free_options(lyrics_file, tmp_path / "run", epochs=3, dropout=0.2),
          log=lines.append, progress_bar=False)
    saved = checkpoint.load(tmp_path / "run" / "last.pt", training_state=True)
    assert saved.config.model.dropout == 0.2
    assert saved.progress.strengthening == ["embedding_dropout", "weight_decay"]
    assert saved.config.train.weight_decay == \
        pytest.approx(at(saved.progress.strength)["weight_decay"], abs=1e-3)
    raised = [line for line in lines if line.startswith("held-out figure stalled")]
    assert len(raised) == 1 and "raised to embedding dropout" in raised[0]


def test_a_run_given_all_its_regularisation_halves_the_lr_as_before(lyrics_file, tmp_path,
                                                                     monkeypatch):
    stalling(monkeypatch, [2.0, 2.1, 2.2])
    result = train(None, tiny_options(lyrics_file, tmp_path / "run", epochs=3,
                                      lr_schedule="plateau", plateau_patience=1), **QUIET)
    assert [r["lr"] for r in result.history] == [0.01, 0.01, 0.005]
    assert all("strength" not in r for r in result.history)


def test_resume_and_the_same_seed_go_as_an_unbroken_run(lyrics_file, tmp_path, monkeypatch):
    """The strength and the settings in force travel in the checkpoint: stopped after epoch 4
    (one rise behind it) and resumed to epoch 6 (a second rise), a run ends as an unbroken one,
    number for number; and a second run with the same seed makes the same choices."""
    figures = [2.0, 2.1, 2.2, 2.3, 2.4, 2.5]
    settings = dict(epochs=6, lr=0.003, lr_schedule="none")  # as in the test above
    runs = {}
    for name in ("a", "b"):
        stalling(monkeypatch, figures)
        runs[name] = train(None, free_options(lyrics_file, tmp_path / name, **settings),
                           **QUIET)
    stalling(monkeypatch, figures[:4])
    train(None, free_options(lyrics_file, tmp_path / "c", **{**settings, "epochs": 4}), **QUIET)
    stalling(monkeypatch, figures[4:])
    resumed = train(None, {"out": str(tmp_path / "c"), "epochs": 6}, resume=True, **QUIET)
    wa = checkpoint.load(tmp_path / "a" / "last.pt", training_state=True)
    assert wa.progress.strength > resumed.history[0]["strength"] + 0.4  # two rises
    for other, out in ((runs["b"], "b"), (resumed, "c")):
        assert without_timings(other.history) == without_timings(runs["a"].history)
        wb = checkpoint.load(tmp_path / out / "last.pt", training_state=True)
        assert all(torch.equal(wa.model[k], wb.model[k]) for k in wa.model)
        assert wb.progress.strength == wa.progress.strength
