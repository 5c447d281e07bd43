"""benchmarks/RESULTS.md, the page of current figures: one section per benchmark, each between
`<!-- section: KEY -->` and `<!-- end -->`, which a script's run rewrites in place (the rest of
the page is left byte for byte; a section not there yet goes at the end). No torch, no
lyricgen: the tests import it by path."""

from __future__ import annotations

import re
from pathlib import Path

try:
    import fcntl
except ImportError:  # not on Windows: two runs finishing at once could then race
    fcntl = None

END = "<!-- end -->"


def begin(key: str) -> str:
    return f"<!-- section: {key} -->"


def section(key: str, title: str, stamp: str, command: str, machine: str, text: str) -> str:
    """A section as a script writes it: its title, the run behind it (date, command, machine)
    and the script's figures."""
    command = command.strip().replace("|", "\\|")
    return (f"{begin(key)}\n## {title}\n\n| date | command | machine |\n|---|---|---|\n"
            f"| {stamp} | `{command}` | {machine} |\n\n{text.strip(chr(10))}\n{END}")


def replace_section(page: str, key: str, block: str) -> str:
    """`page` with section `key` replaced by `block` (which holds its own markers), or with
    `block` appended if the page has no such section."""
    found = re.search(rf"^{re.escape(begin(key))}[ \t]*\r?$", page, re.MULTILINE)
    if found is None:
        return (page.rstrip("\r\n") + "\n\n" if page.strip() else "") + block + "\n"
    end = page.find(END, found.end())
    if end < 0:
        raise ValueError(f"section {key!r} has no {END} after it")
    return page[:found.start()] + block + page[end + len(END):]


def write_section(path: Path, key: str, block: str) -> None:
    """Rewrite section `key` of the page at `path` in place (created if missing)."""
    path = Path(path)
    path.touch()
    with path.open("r+b") as f:
        if fcntl is not None:
            fcntl.flock(f, fcntl.LOCK_EX)  # held until the file is closed
        page = f.read().decode("utf-8")
        f.seek(0)
        f.write(replace_section(page, key, block).encode("utf-8"))
        f.truncate()
