"""The presets the page offers: those of a folder (configs/) that have a [sample] table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lyricgen.errors import LyricgenError
from lyricgen.presets import read_toml


def find_presets(folder: Path | None) -> dict[str, tuple[Path, dict[str, Any]]]:
    """The presets of `folder` that have a [sample] table, by name: file and table."""
    found = {}
    for path in sorted(folder.glob("*.toml")) if folder and folder.is_dir() else []:
        try:
            table = read_toml(path).get("sample")
        except (LyricgenError, OSError):
            continue  # not a preset the page can offer; `sample --config` would say why
        if isinstance(table, dict):
            found[path.stem] = (path, table)
    return found
