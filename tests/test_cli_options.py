"""`train` and `compare` take one list of options (lyricgen/cli_shared.py): the same options, in
the same order and with the same help, but where compare really differs; and the options given
reach the commands."""

from __future__ import annotations

from types import SimpleNamespace

from typer.main import get_command

from conftest import assert_one_line_error, cli
from lyricgen import tables
from lyricgen.cli import app
from lyricgen.cli_shared import TRAIN
from lyricgen.commands import compare as compare_command
from lyricgen.commands import train as train_command


def options(name: str) -> dict[str, tuple]:
    """Each option of the command as its --help shows it (names, metavar, help, default)."""
    command = get_command(app).commands[name]
    context = command.make_context(name, [], resilient_parsing=True)
    return {p.name: (p.get_help_record(context), p.default) for p in command.params}


def test_train_and_compare_take_the_shared_list():
    train, compare = options("train"), options("compare")
    assert list(train) == [p.name for p in TRAIN]
    assert [name for name in train if name not in ("backend", "init_from", "resume")] \
        == list(compare)
    assert {name for name in compare if compare[name] != train[name]} == {"out"}
    assert "[default: checkpoints/compare]" in compare["out"][0][1]
    assert train["resume"][1] is False and train["overwrite"][1] is False and \
        compare["overwrite"][1] is False and train["data"][1] is None


def test_the_options_given_reach_the_commands(monkeypatch, tmp_path):
    """Only the options given, without --config, --resume and --overwrite (passed apart);
    compare's --out has its own default."""
    calls = []
    monkeypatch.setattr(train_command, "train", lambda config, options, **kw: calls.append(
        (config, options, kw)) or SimpleNamespace(reported=False, exit_code=0))
    monkeypatch.setattr(compare_command, "compare", lambda config, options, **kw: calls.append(
        (config, options, kw)))
    monkeypatch.setattr(tables, "print_comparison", lambda result: None)
    config = tmp_path / "preset.toml"
    assert cli("train", "--config", config, "--epochs", 3, "--no-cache-eval", "--prefix", "a",
               "--prefix", "b", "--resume").exit_code == 0
    assert cli("compare", "--lr", 0.5, "--overwrite").exit_code == 0
    for option in ("--backend", "--init-from", "--resume"):  # train's alone
        assert_one_line_error(cli("compare", option, "x"), 2, option)
    (train_config, train_options, train_kw), (compare_config, compare_options, compare_kw) = calls
    assert train_config == str(config) and compare_config is None
    assert train_options == {"epochs": 3, "cache_eval": False, "prefix": ["a", "b"]}
    assert train_kw["resume"] is True and train_kw["overwrite"] is False
    assert compare_options == {"out": "checkpoints/compare", "lr": 0.5}
    assert compare_kw["overwrite"] is True
