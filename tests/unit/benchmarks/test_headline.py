"""The README's headline table is the one generated from the results files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

import headline
from headline import HeadlineError, Value, locate, parse_cell, readme_block, render, status

ROOT = Path(__file__).resolve().parents[3]

RESULTS_MD = """# A run

| model | test AUROC (95% CI) | F1 |
|---|---|---:|
| **ours** | **0.853 (0.805–0.900)** (0.8532) | 0.820 ± 0.013 |
| baseline | 0.818 (0.763–0.872) | 0.700 |

## A later run

| model | test AUROC (95% CI) |
|---|---|
| ours | 0.870 |
"""


def test_readme_headline_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme_block(readme) == render(), (
        "README's headline table differs from benchmarks/results/headline.toml and the "
        "results files: run `python benchmarks/headline.py`"
    )


def test_every_headline_row_reads_its_numbers_and_names_existing_configs():
    spec = headline.tomllib.loads(headline.SPEC.read_text(encoding="utf-8"))
    for row in spec["row"]:
        line = headline.render_row(row)
        assert line.count("|") == 8, line
        for config in row["config"]:
            assert (ROOT / config).is_file(), f"{row['data']}: {config} does not exist"


def test_adrenal_row_judges_the_rerun_and_shows_the_first_run():
    rows = render().splitlines()
    adrenal = next(r for r in rows if r.startswith("| AdrenalMNIST3D"))
    assert "AUROC 0.849 (95% CI 0.800–0.895) on the 2026-12-05 rerun" in adrenal
    assert "0.853 (0.805–0.900) when first run" in adrenal
    assert "AUROC ≥ 0.85: **missed** (AUROC 0.849)" in adrenal
    assert "configs/adrenalmnist3d-slices-cv.toml" in adrenal


def test_parse_cell_reads_point_sd_and_interval():
    assert parse_cell("**0.853 (0.805–0.900)** (0.8532)", "x") == Value(
        "0.853", lo="0.805", hi="0.900"
    )
    assert parse_cell("**0.820 ± 0.013**", "x") == Value("0.820", sd="0.013")
    assert parse_cell("0.8592", "x") == Value("0.8592")
    with pytest.raises(HeadlineError, match="expected a number"):
        parse_cell("n/a", "ecg.md: value 'f1'")


def test_locate_takes_the_first_table_after_the_anchor():
    first = {"after": "# A run", "row": "ours", "column": "test AUROC (95% CI)"}
    later = {**first, "after": "## A later run"}
    assert locate(RESULTS_MD, "auroc", "r.md", first).text == "0.853"
    assert locate(RESULTS_MD, "auroc", "r.md", later).text == "0.870"
    assert locate(RESULTS_MD, "f1", "r.md", {**first, "column": "F1"}).sd == "0.013"


@pytest.mark.parametrize(
    ("locator", "message"),
    [
        ({"after": "# Nowhere", "row": "ours", "column": "F1"}, "no line contains"),
        ({"after": "# A run", "row": "theirs", "column": "F1"}, "no table after"),
        ({"after": "# A run", "row": "ours", "column": "AUPRC"}, "no table after"),
        ({"row": "ours", "column": "F1"}, "needs 'after'"),
    ],
)
def test_locate_names_what_it_did_not_find(locator, message):
    with pytest.raises(HeadlineError, match=message):
        locate(RESULTS_MD, "f1", "r.md", locator)


def test_status_is_computed_from_the_numbers():
    row = {"targets": [{"label": "AUROC", "value": "auroc", "at_least": "0.85"}]}
    met = {"auroc": Value("0.86")}
    loose = {"auroc": Value("0.853", lo="0.805", hi="0.900")}
    missed = {"auroc": Value("0.818", lo="0.763", hi="0.872")}
    assert status(row, met, "x") == "AUROC ≥ 0.85: met"
    assert status(row, loose, "x") == "AUROC ≥ 0.85: met on the point estimate"
    assert status(row, missed, "x") == "AUROC ≥ 0.85: **missed** (AUROC 0.818)"
    within = {"targets": [{"label": "close", "value": "a", "within": "0.01", "of": "b"}]}
    apart = {"a": Value("0.859"), "b": Value("0.871")}
    assert status(within, apart, "x") == "close: **missed** (close 0.859)"
    assert status({"note": "too small"}, {}, "x") == "too small"
    with pytest.raises(HeadlineError, match="needs a 'note'"):
        status({}, {}, "x")
