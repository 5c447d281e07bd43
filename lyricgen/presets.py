"""Presets and where a setting came from: `load_config` layers the defaults, a TOML preset and
the options given; an error about a setting names the option typed or the preset's file, table
and key."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lyricgen.config import SECTION_OF, Config
from lyricgen.data.text_files import open_regular
from lyricgen.errors import LyricgenError, SettingError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


def load_config(path: str | Path | None, overrides: dict[str, Any],
                base: Config | None = None) -> Config:
    """Defaults (or `base`), then the TOML file (if any), then the command-line overrides;
    validated."""
    preset = {} if path is None else read_toml(path)
    config = base or Config()
    if path is not None:
        Config.from_dict(preset, source=str(path))  # its own mistakes, named as its own
        values = config.to_dict()
        for table, keys in preset.items():
            values[table].update(keys)
        config = Config.from_dict(values, source=str(path))
    with naming_sources(path, preset, overrides):
        return config.with_overrides(overrides).validate()


@contextmanager
def naming_sources(path: str | Path | None, preset: dict[str, Any],
                   overrides: dict[str, Any], table: str | None = None) -> Iterator[None]:
    """A setting's error names where its value came from: the option typed (`--batch-size`),
    or the preset's file, table and key (`preset.toml [train] batch_size`). `table`: the
    settings' table when it is not a training one (`sample`)."""
    try:
        yield
    except SettingError as e:
        # training's options never set [sample]'s keys (`seed` is in both)
        given = {} if table is None and e.table == "sample" else overrides
        where = source_of(e.key, path, preset, given, table or e.table)
        raise UsageError(f"{where} {e.rule}") from None


def source_of(key: str, path: str | Path | None, preset: dict[str, Any],
              overrides: dict[str, Any], table: str | None = None) -> str:
    table = table or SECTION_OF.get(key)
    if key in overrides or table is None:
        return option_name(key)
    if path is not None and key in preset.get(table, {}):
        return f"{path} [{table}] {key}"
    return key  # a default's (defaults are valid; a stored checkpoint's)


def option_name(key: str) -> str:
    return "--" + key.replace("_", "-")


def flat_keys(values: dict[str, Any], source: str) -> dict[str, Any]:
    """A preset's training tables as flat `key -> value` settings, checked as
    `Config.from_dict` does."""
    Config.from_dict(values, source=source)
    return {key: value for name, table in values.items() if name != "sample"
            for key, value in table.items()}


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with open_regular(path, "give a TOML preset file") as f:  # a FIFO would wait forever
            return tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"config file not found: {path}") from None
    except LyricgenError as e:  # a folder, a FIFO, a device
        raise UsageError(f"config file {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path} is not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not valid TOML: not UTF-8 text") from None
