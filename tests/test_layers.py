"""The layers hold: each module imports only what lies below it, read from the source."""

from __future__ import annotations

import ast
from pathlib import Path

import lyricgen

PACKAGE = Path(lyricgen.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Each lyricgen module and the lyricgen modules it imports anywhere in its text (inside
    functions too): `from a import b` counts as a.b when a.b is a module, else as a."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                          else node.module for a in node.names}
        graph[name] = {m for m in found if m.split(".")[0] == "lyricgen" and m != name}
    return graph


def under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_import_reader_sees_what_is_there():
    graph = imports()
    assert "lyricgen.models.cell" in graph["lyricgen.models.scratch"]
    assert "lyricgen.commands.train" in graph["lyricgen.cli"]  # an import inside a function


def test_models_import_nothing_above_them():
    for module, targets in imports().items():
        if under(module, "lyricgen.models"):
            assert {t for t in targets if not under(t, "lyricgen.models", "lyricgen.errors")} \
                == set(), module


def test_the_lower_layers_stay_below_the_upper_ones():
    """data/ below counts/ and songs/; nothing but the commands below the command line;
    checkpoints, sizing and tables knowing nothing of training."""
    rules = {("lyricgen.data",): ("lyricgen.counts", "lyricgen.songs", "lyricgen.training",
                                  "lyricgen.checkpoint", "lyricgen.sampler"),
             ("lyricgen.counts",): ("lyricgen.songs", "lyricgen.training"),
             ("lyricgen.checkpoint", "lyricgen.sizing", "lyricgen.tables"): ("lyricgen.training",)}
    for module, targets in imports().items():
        if not under(module, "lyricgen.commands", "lyricgen.cli", "lyricgen.__main__"):
            assert not any(under(t, "lyricgen.commands", "lyricgen.cli") for t in targets), module
        for lower, above in rules.items():
            if under(module, *lower):
                assert not any(under(t, *above) for t in targets), (module, targets)


def test_there_is_no_import_circle():
    graph = imports()
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                raise AssertionError(" -> ".join(path[path.index(target):] + [target]))
            if target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
