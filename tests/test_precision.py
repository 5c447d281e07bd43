"""Training's matmul precision (training/precision.py): what auto chooses where, that bfloat16
products are switched on for exactly the training step's forward and backward passes, what they
compute, and the option through `train` and `compare`."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import TINY, assert_one_line_error, cli, cli_args, tiny_options
from lyricgen import checkpoint
from lyricgen.commands.train import train
from lyricgen.models.charlm import CharLM, ModelConfig
from lyricgen.training import precision
from lyricgen.training.step import TrainStep

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def backend_settings() -> tuple[str, str]:
    return torch.backends.mkldnn.matmul.fp32_precision, torch.backends.mkldnn.rnn.fp32_precision


@pytest.mark.parametrize("amx", [True, False])
def test_auto_takes_bfloat16_on_a_cpu_with_amx_and_nowhere_else(monkeypatch, amx):
    monkeypatch.setattr(precision, "has_amx", lambda: amx)
    bfloat16, note = precision.choose("auto", CPU)
    assert bfloat16 is amx
    assert (note is not None and "bfloat16" in note and "AMX" in note) if amx else note is None
    assert precision.choose("auto", CUDA) == (False, None)
    assert precision.choose("float32", CPU) == (False, None)


def test_bfloat16_by_name_is_taken_on_the_cpu_and_noted_where_it_cannot_be(monkeypatch):
    monkeypatch.setattr(precision, "has_amx", lambda: False)
    assert precision.choose("bfloat16", CPU) == (True, None)
    bfloat16, note = precision.choose("bfloat16", CUDA)
    assert not bfloat16 and "for the CPU" in note
    monkeypatch.setattr(precision, "supported", lambda: False)
    bfloat16, note = precision.choose("bfloat16", CPU)
    assert not bfloat16 and "float32" in note
    assert precision.choose("auto", CPU) == (False, None)


def test_the_setting_is_on_within_and_restored_after_also_on_an_error():
    before = backend_settings()
    assert before == ("none", "none")
    with precision.bfloat16_matmuls():
        assert backend_settings() == ("bf16", "bf16")
    assert backend_settings() == before
    with pytest.raises(ValueError), precision.bfloat16_matmuls():
        raise ValueError
    assert backend_settings() == before


@pytest.mark.skipif(not precision.has_amx(), reason="bfloat16 products need a CPU with AMX")
def test_with_amx_a_product_is_that_of_the_inputs_rounded_to_bfloat16():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 256, generator=gen), torch.randn(256, 128, generator=gen)
    rounded = a.bfloat16().double() @ b.bfloat16().double()  # float64 sums of rounded inputs
    exact = a.double() @ b.double()
    with precision.bfloat16_matmuls():
        product = (a @ b).double()
    assert torch.allclose(product, rounded, rtol=1e-5, atol=1e-4)
    assert not torch.allclose(product, exact, rtol=1e-5, atol=1e-4)  # rounding did happen
    assert torch.allclose(a @ b, exact.float(), rtol=1e-5, atol=1e-4)  # and only within


@pytest.mark.parametrize("bfloat16", [True, False])
def test_the_step_multiplies_in_bfloat16_in_forward_and_backward_only(bfloat16):
    torch.manual_seed(0)
    model = CharLM(7, ModelConfig(hidden_size=8, embedding_size=4, dropout=0.0,
                                  embedding_dropout=0.0, tie_weights=False))
    seen = []
    model.head.register_forward_hook(lambda *_: seen.append(("forward", backend_settings())))
    model.head.weight.register_hook(lambda g: seen.append(("backward", backend_settings())))
    step = TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.1), clip=1.0,
                     bfloat16=bfloat16)
    X = torch.randint(0, 7, (2, 5))
    step(X, X, None)
    inside = ("bf16", "bf16") if bfloat16 else ("none", "none")
    assert seen == [("forward", inside), ("backward", inside)]
    assert backend_settings() == ("none", "none")


def test_train_notes_auto_and_saves_the_choice(lyrics_file, tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "has_amx", lambda: True)
    lines = []
    options = {**tiny_options(lyrics_file, tmp_path / "run", epochs=1), "matmul": "auto"}
    train(None, options, log=lines.append, progress_bar=False)
    assert sum("multiplies matrices in bfloat16" in line for line in lines) == 1
    assert checkpoint.load(tmp_path / "run" / "last.pt").config.train.matmul == "auto"
    lines.clear()
    train(None, {**options, "matmul": "float32", "out": str(tmp_path / "f32")},
          log=lines.append, progress_bar=False)
    assert not any("bfloat16" in line for line in lines)


def test_compare_multiplies_in_float32_unless_bfloat16_is_asked_for(lyrics_file, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setattr(precision, "has_amx", lambda: True)
    args = [a for a in cli_args({**TINY, "epochs": 1}) if a not in ("--matmul", "float32")]
    for asked, used in (("auto", "float32"), ("bfloat16", "bfloat16")):
        out = tmp_path / asked
        result = cli("compare", "--data", lyrics_file, "--out", out, *args, "--matmul", asked)
        assert result.exit_code == 0, result.output
        for backend in ("scratch", "builtin"):
            assert checkpoint.load(out / backend / "last.pt").config.train.matmul == used
        assert json.loads((out / "compare.json").read_text())["config"]["train"]["matmul"] == asked


def test_an_unknown_precision_is_a_one_line_error(lyrics_file, tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text('[train]\nmatmul = "half"\n', encoding="utf-8")
    result = cli("train", "--config", preset, "--data", lyrics_file, "--out", tmp_path / "r")
    assert_one_line_error(result, 2, "matmul")
    assert not (tmp_path / "r").exists()
