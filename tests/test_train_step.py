"""The training step: `GraphedStep`'s bookkeeping (eager warm-up, the batch and the carried state
copied into the recorded inputs, outputs read back, a new recording for a new lr, other shapes
run eagerly, a failed recording) gives exactly what the eager step gives.

The recorder here "replays" by running the recorded function again, so the step sees only what
GraphedStep put into the recorded inputs. CUDA's recording itself needs a GPU and is checked by
benchmarks/gpu.py (graphed vs eager training curves), never by the tests.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch

from conftest import tiny_options, without_timings
from lyricgen import checkpoint
from lyricgen.commands.train import train as run_training
from lyricgen.models.charlm import CharLM, ModelConfig
from lyricgen.training.setup import restore_optimizer
from lyricgen.training.step import CrossEntropy, GraphedStep, TrainStep

V, B, T = 11, 4, 6


class Rerun:
    def __init__(self, fail: bool = False):
        self.fail, self.warmups, self.recordings = fail, 0, 0

    @contextmanager
    def warmup(self):
        self.warmups += 1
        yield

    def record(self, fn):
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing\nand more")
        self.recordings += 1
        return fn


def step_for(optimizer: str, backend: str) -> TrainStep:
    torch.manual_seed(0)
    model = CharLM(V, ModelConfig(backend=backend, input="embedding", embedding_size=5,
                                  hidden_size=8, num_layers=2, dropout=0.0,
                                  embedding_dropout=0.0, tie_weights=False))
    kind = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[optimizer]
    return TrainStep(model, kind(model.parameters(), lr=0.05), clip=0.5)


def batches():
    """(X, Y, carry): eight batches; the state restarts at 0 and 4, batch 3 is shorter."""
    gen = torch.Generator().manual_seed(1)
    for i in range(8):
        steps = T - 2 if i == 3 else T
        ids = torch.randint(0, V, (B, steps + 1), generator=gen)
        yield ids[:, :-1], ids[:, 1:], i not in (0, 4)


def train(step, halve_lr_at: int = 5) -> list[torch.Tensor]:
    losses, hidden = [], None
    for i, (X, Y, carry) in enumerate(batches()):
        if i == halve_lr_at:  # what the lr schedules do between epochs
            for group in step_optimizer(step).param_groups:
                group["lr"] /= 2
        loss, hidden = step(X, Y, hidden if carry else None)
        hidden = tuple(h.detach() for h in hidden)
        losses.append(loss.clone())
    return losses


def step_optimizer(step) -> torch.optim.Optimizer:
    return (step.step if isinstance(step, GraphedStep) else step).optimizer


@pytest.mark.parametrize("backend", ["scratch", "builtin"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_graphed_step_gives_what_the_eager_step_gives(optimizer, backend):
    eager = step_for(optimizer, backend)
    recorder, logs = Rerun(), []
    graphed = GraphedStep(step_for(optimizer, backend), recorder, logs.append, warmup=2)
    expected, got = train(eager), train(graphed)
    assert all(torch.equal(a, b) for a, b in zip(expected, got))
    for a, b in zip(eager.model.parameters(), graphed.step.model.parameters()):
        assert torch.equal(a, b)
    # batches 0-1 warm up, 2 is recorded (and replayed), 3 (shorter) runs eagerly, 4 replays
    # from a fresh state; the lr halves at 5: 5-6 warm up, 7 is recorded
    assert recorder.warmups == 4 and recorder.recordings == 2
    assert logs == []
    # nothing it keeps holds an autograd graph (on CUDA one ties later steps to its stream)
    assert all(h.grad_fn is None for h in (*graphed.state_like, *graphed.h_out))


def test_a_failed_recording_is_one_note_then_eager_steps():
    eager = step_for("adam", "scratch")
    recorder, logs = Rerun(fail=True), []
    graphed = GraphedStep(step_for("adam", "scratch"), recorder, logs.append, warmup=1)
    expected, got = train(eager, halve_lr_at=-1), train(graphed, halve_lr_at=-1)
    assert all(torch.equal(a, b) for a, b in zip(expected, got))
    assert logs == ["note: the training step could not be recorded as a CUDA graph (operation "
                    "not permitted when stream is capturing); it runs eagerly, which is slower"]


def test_on_the_cpu_cuda_graphs_change_nothing(lyrics_file, tmp_path):
    runs = {}
    for graphs in (True, False):
        out = tmp_path / str(graphs)
        logs = []
        runs[graphs] = run_training(None, tiny_options(lyrics_file, out, optimizer="adam",
                                                       cuda_graphs=graphs),
                                    log=logs.append, progress_bar=False).history
        assert not [line for line in logs if line.startswith("note:")]
        saved = checkpoint.load(out / "last.pt", training_state=True)
        assert not saved.optimizer["param_groups"][0]["capturable"]
    assert without_timings(runs[True]) == without_timings(runs[False])


class Spying(torch.optim.Adam):
    """Adam that records its groups' `capturable` at every step."""

    def __init__(self, params, **kwargs):
        super().__init__(params, **kwargs)
        self.seen: list[bool] = []

    def step(self, closure=None):
        self.seen.append(self.param_groups[0]["capturable"])
        return super().step(closure)


def test_eager_steps_run_a_fused_capturable_adam_uncaptured_and_recordings_captured():
    torch.manual_seed(0)
    model = CharLM(V, ModelConfig(backend="scratch", input="embedding", embedding_size=5,
                                  hidden_size=8, dropout=0.0, embedding_dropout=0.0,
                                  tie_weights=False))
    optimizer = Spying(model.parameters(), lr=0.05, capturable=True, fused=True)
    graphed = GraphedStep(TrainStep(model, optimizer, clip=0.5), Rerun(), [].append, warmup=2)
    train(graphed, halve_lr_at=-1)
    # 2 warm-up steps, the recorded one, the shorter batch eagerly, 4 replays ("replaying"
    # runs the recorded step again)
    assert optimizer.seen == [False, False, True, False, True, True, True, True]
    assert optimizer.param_groups[0]["capturable"]


def test_a_resumed_optimizer_keeps_this_run_s_capturable():
    """A run started on the CPU (capturable off) and resumed where graphs record its step."""
    model = torch.nn.Linear(3, 2)
    before = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    before.step()
    after = torch.optim.Adam(model.parameters(), lr=0.1, capturable=True)
    restore_optimizer(after, before.state_dict())
    assert after.param_groups[0]["capturable"]
    assert after.state[model.weight]["step"].item() == 1


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_the_steps_cross_entropy_equals_torchs_in_value_and_gradient(dtype, tol):
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(50, 13, generator=gen) * 4).to(dtype)
    targets = torch.randint(0, 13, (50,), generator=gen)
    values, grads = [], []
    for loss_of in (CrossEntropy.apply, torch.nn.functional.cross_entropy):
        x = logits.clone().requires_grad_()
        loss = loss_of(x, targets)
        (3 * loss).backward()  # an incoming gradient other than 1
        values.append(loss.detach())
        grads.append(x.grad)
    assert torch.allclose(values[0], values[1], rtol=tol, atol=0)
    assert torch.allclose(grads[0], grads[1], rtol=tol, atol=tol)


def raise_weight_decay(step) -> None:
    for group in step_optimizer(step).param_groups:
        group["weight_decay"] = 0.1


def raise_dropout(step) -> None:
    (step.step if isinstance(step, GraphedStep) else step).model.set_dropout(0.3, 0.2)


@pytest.mark.parametrize("change", [raise_weight_decay, raise_dropout])
def test_a_change_of_weight_decay_or_dropout_records_anew(change):
    """The regularisation rising between epochs (training/regularising.py) changes numbers a
    recording bakes in, as the lr does: the steps after it warm up and record again, and give
    what eager steps give."""
    runs = []
    for graphed in (False, True):
        step, recorder = step_for("adam", "scratch"), Rerun()
        if graphed:
            step = GraphedStep(step, recorder, [].append, warmup=2)
        torch.manual_seed(3)  # the same dropout masks for both
        losses, hidden = [], None
        for i, (X, Y, carry) in enumerate(batches()):
            if i == 5:
                change(step)
            loss, hidden = step(X, Y, hidden if carry else None)
            hidden = tuple(h.detach() for h in hidden)
            losses.append(loss.clone())
        runs.append(losses)
    assert all(torch.equal(a, b) for a, b in zip(*runs))
    assert recorder.warmups == 4 and recorder.recordings == 2
