"""bench_serving_hardening.py replaces only its own section of the shared serving.md.

It used to keep the text above ``## Hardening`` and drop everything below it, which by then
held the memory, kill and signal sections of other benchmarks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

from bench_serving_hardening import ROOT, write_report
from benchkit.sections import markers, replace_section

NEW = "## Hardening\n\n| server | updates/s |\n|---|---:|\n| after | 999 |\n"


def _sections(text: str) -> dict[str, str]:
    """Each ``## `` heading of ``text`` with the lines up to the next one, markers dropped."""
    out: dict[str, str] = {}
    title = ""
    for line in text.splitlines():
        if line.startswith("## "):
            title = line
        if not line.startswith("<!-- "):
            out[title] = out.get(title, "") + line.strip() + "\n"
    return {k: v.strip() for k, v in out.items()}


def test_the_real_serving_md_keeps_every_other_section(tmp_path):
    real = (ROOT / "benchmarks" / "results" / "serving.md").read_text()
    before = _sections(real)
    assert "## Hardening" in before and len(before) > 4  # sections written by other benchmarks
    path = tmp_path / "serving.md"
    path.write_text(real)
    write_report(path, NEW)
    once = path.read_text()
    after = _sections(once)
    assert after["## Hardening"] == NEW.strip()
    assert list(after) == list(before)  # same sections, same order
    for title, body in before.items():
        if title != "## Hardening":
            assert after[title] == body, title
    write_report(path, NEW.replace("999", "1001"))  # a second run: between the markers now
    twice = path.read_text()
    assert twice == once.replace("999", "1001")
    begin, end = markers("serving_hardening")
    assert twice.count(begin) == twice.count(end) == 1


def test_a_missing_file_gets_the_section(tmp_path):
    path = tmp_path / "absent.md"
    write_report(path, NEW)
    begin, end = markers("serving_hardening")
    assert path.read_text() == f"{begin}\n{NEW.strip()}\n{end}\n"


def test_text_around_the_markers_is_kept_to_the_byte():
    begin, end = markers("x")
    text = f"# T\n\n## A\na\n{begin}\nold\n{end}\nno blank line\n## B\nb"
    assert (
        replace_section(text, "x", "new")
        == f"# T\n\n## A\na\n{begin}\nnew\n{end}\nno blank line\n## B\nb"
    )


def test_a_section_without_heading_or_markers_is_appended():
    begin, end = markers("x")
    assert (
        replace_section("# T\n\n## A\na\n", "x", "## X\nx")
        == f"# T\n\n## A\na\n\n{begin}\n## X\nx\n{end}\n"
    )


@pytest.mark.parametrize(
    "broken", ["<!-- x:begin -->\nold\n", "old\n<!-- x:end -->\n<!-- x:begin -->\n"]
)
def test_broken_markers_are_refused(broken):
    with pytest.raises(ValueError, match="fix the markers"):
        replace_section(f"# T\n{broken}## B\n", "x", "new")
