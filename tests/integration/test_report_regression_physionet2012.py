"""The HTML report of a length-of-stay (regression) GRU trained on real PhysioNet 2012 data.

Same interface as the binary report: the numbers in the page must be those of
``metrics_with_ci(task="regression")`` recomputed here, every regression figure must be
present (and decoded by Chromium), and the card must say that thresholds and calibration
maps do not apply.
"""

from __future__ import annotations

import pytest
from test_report_physionet2012 import parse_report_cells, render_in_chromium

from medseq.bundle import load_bundle
from medseq.evaluation import metrics_with_ci
from medseq.experiment.data import labels_for
from medseq.report import ReportConfig, build_report
from medseq.report.html import fmt

N_BOOT = 100
N_SUBJECTS = 600
FIGURES = {
    "predicted_observed",
    "residuals",
    "calibration_large",
    "subgroups",
    "missingness",
    "importance",
    "example_integrated_gradients",
    "example_occlusion",
}


@pytest.fixture(scope="module")
def los_report(trained_los_bundle, physionet2012_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("los_report") / "report.html"
    config = ReportConfig(n_boot=N_BOOT, max_subjects=N_SUBJECTS, n_explain=60)
    return build_report(
        trained_los_bundle,
        physionet2012_dir / "set-b.tar.gz",
        external=physionet2012_dir / "set-a.tar.gz",
        output=out,
        config=config,
    )


def test_page_numbers_are_metrics_with_ci_recomputed(los_report, trained_los_bundle, set_b):
    parsed = parse_report_cells(los_report).cells
    cells = [c for c in parsed if c["data-set"] == "internal"]
    assert {c["data-metric"] for c in cells} == {"mse", "rmse", "mae", "r2"}
    bundle = load_bundle(trained_los_bundle)
    labels = labels_for("length_of_stay", set_b).sort_index().iloc[:N_SUBJECTS]
    pred = bundle.predict(set_b, labels.index.to_numpy())
    expected = metrics_with_ci(
        labels.to_numpy(), pred, task="regression", n_boot=N_BOOT, random_state=0
    )
    for cell in cells:
        triple = [float(cell[k]) for k in ("data-point", "data-lo", "data-hi")]
        assert triple == pytest.approx(list(expected[cell["data-metric"]]), rel=1e-9)
        assert cell["text"].strip() == fmt(triple[0])
    external = [c for c in parsed if c["data-set"] == "external"]
    assert len(external) == 4


def test_sections_figures_and_card(los_report, trained_los_bundle):
    page = los_report.html_path.read_text(encoding="utf-8")
    assert set(los_report.figure_paths) == FIGURES
    assert "days" in page and "threshold" not in page.split('id="calibration"')[0]
    assert "not a logit" in page and 'data-drift="mean_error"' in page
    table = los_report.subgroups
    assert set(table["attribute"]) == {"age", "sex", "ICU type"}
    assert set(table["metric"]) <= {"mae", "r2", ""}
    card = load_bundle(trained_los_bundle).model_card
    assert card["model_details"]["threshold"] is None and card["calibration"] is None
    assert any("no decision threshold" in x for x in card["limitations"])
    assert card["explanations"]["faithfulness"]["mean_change_top"] > 0


def test_regression_report_renders_in_chromium(los_report, tmp_path):
    page = render_in_chromium(los_report.html_path, tmp_path / "report.png")
    assert page["errors"] == [], page["errors"]
    figures = {img["figure"]: img for img in page["images"]}
    assert set(figures) == FIGURES
    for name, img in figures.items():
        assert img["complete"] and img["naturalWidth"] > 400, name
