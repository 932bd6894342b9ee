"""bench_serving.py rewrites its own sections of serving.md and keeps the others'."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

from bench_serving import keep_other_sections


def test_own_sections_replaced_other_sections_kept(tmp_path: Path) -> None:
    path = tmp_path / "serving.md"
    path.write_text("# Serving\n\n## HTTP\nold figure\n\n## Hardening\n211 updates/s\n")
    out = keep_other_sections("# Serving\n\n## HTTP\nnew figure\n", path)
    assert "new figure" in out and "old figure" not in out
    assert out.endswith("## Hardening\n211 updates/s\n")


def test_missing_file_gives_the_new_report(tmp_path: Path) -> None:
    assert keep_other_sections("# Serving\n", tmp_path / "absent.md") == "# Serving\n"
