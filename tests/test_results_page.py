"""benchmarks/RESULTS.md: a benchmark's run rewrites its own section in place, leaves the
others byte for byte, and appends a section the page does not have yet."""

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "results_page.py"
_spec = importlib.util.spec_from_file_location("results_page", _PATH)
results_page = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(results_page)

HEADER = "# Benchmark results\n\nThe page of current figures.\n"
SPEED = ("<!-- section: speed -->\n## Training speed (speed.py)\n\n| date | command | machine |\n"
         "|---|---|---|\n| 2026-11-30 21:46 | `python benchmarks/speed.py` | a CPU |\n\n"
         "- scratch vs builtin: **2.12x**\n<!-- end -->")
QUALITY = ("<!-- section: quality -->\n## Quality of the default preset (quality.py)\n\n"
           "| run | best val ppl |\n|---|---|\n| default preset | 45.1 |\n\nA reading.\n"
           "<!-- end -->")


def _block(key: str, figure: str) -> str:
    return results_page.section(key, f"Benchmark {key}", "2026-12-05 10:00",
                                f"python benchmarks/{key}.py --x 1", "a machine",
                                f"| figure |\n|---|\n| {figure} |\n")


def _page(tmp_path: Path) -> Path:
    page = tmp_path / "RESULTS.md"
    page.write_bytes(f"{HEADER}\n{SPEED}\n\n{QUALITY}\n".encode())
    return page


def test_a_run_rewrites_its_own_section_and_leaves_the_other_byte_for_byte(tmp_path):
    page = _page(tmp_path)
    results_page.write_section(page, "speed", _block("speed", "3.00x"))
    text = page.read_text(encoding="utf-8")
    assert text.startswith(HEADER)
    assert text.count("<!-- section: speed -->") == 1 and "2.12x" not in text
    new = text[text.index("<!-- section: speed -->"):text.index("<!-- section: quality -->")]
    assert new == _block("speed", "3.00x") + "\n\n"
    assert "| 2026-12-05 10:00 | `python benchmarks/speed.py --x 1` | a machine |" in new
    assert text.endswith(f"\n\n{QUALITY}\n")  # the other section, and what follows it, untouched

    before = page.read_bytes()
    results_page.write_section(page, "quality", _block("quality", "33.2"))
    after = page.read_bytes()
    speed = before[:before.index(b"<!-- section: quality -->")]
    assert after.startswith(speed)  # everything before the rewritten section, byte for byte
    assert b"| 33.2 |" in after and b"45.1" not in after and b"A reading." not in after


def test_a_missing_section_is_appended(tmp_path):
    page = _page(tmp_path)
    before = page.read_bytes()
    results_page.write_section(page, "gpu", _block("gpu", "1,138,751 tokens/s"))
    after = page.read_bytes()
    assert after == before + b"\n" + _block("gpu", "1,138,751 tokens/s").encode() + b"\n"
    results_page.write_section(page, "gpu", _block("gpu", "900,000 tokens/s"))  # now in place
    assert page.read_bytes() == before + b"\n" + _block("gpu", "900,000 tokens/s").encode() + b"\n"


def test_a_key_that_begins_another_key_is_not_mistaken_for_it(tmp_path):
    page = _page(tmp_path)
    results_page.write_section(page, "quality-gb2312_text", _block("quality-gb2312_text", "53.3"))
    results_page.write_section(page, "quality", _block("quality", "33.2"))
    text = page.read_text(encoding="utf-8")
    assert "| 53.3 |" in text and "| 33.2 |" in text and "45.1" not in text


def test_a_new_page_and_a_broken_one(tmp_path):
    page = tmp_path / "RESULTS.md"
    results_page.write_section(page, "speed", _block("speed", "2.00x"))
    assert page.read_text(encoding="utf-8") == _block("speed", "2.00x") + "\n"
    page.write_text("<!-- section: speed -->\n## no end marker\n", encoding="utf-8")
    with pytest.raises(ValueError):
        results_page.write_section(page, "speed", _block("speed", "2.00x"))
    assert page.read_text(encoding="utf-8") == "<!-- section: speed -->\n## no end marker\n"


def test_a_pipe_in_the_command_does_not_break_the_table():
    block = results_page.section("x", "X", "2026-12-05 10:00", "python x.py --only 'a|b'", "m",
                                 "figures")
    assert "| `python x.py --only 'a\\|b'` |" in block
