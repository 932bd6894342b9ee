"""Render the report context into one self-contained HTML page (jinja2).

Figures are embedded as base64 PNG ``data:`` URIs and the style sheet is inline, so the
file opens offline, can be mailed or archived as is, and loads nothing from anywhere
(no script, no font, no network). Every number shown is also written in a ``data-*``
attribute with full precision, so tests (and anyone auditing) can compare the page with
the bundle without parsing formatted text.
"""

from __future__ import annotations

import base64
import math
from typing import Any

from medseq import __version__

METRIC_LABELS = {
    "auroc": "AUROC",
    "auprc": "AUPRC (average precision)",
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "precision": "precision (PPV)",
    "recall": "sensitivity (recall)",
    "specificity": "specificity",
    "f1": "F1",
    "brier": "Brier score",
    "ece": "expected calibration error",
    "mse": "mean squared error (MSE)",
    "rmse": "root mean squared error (RMSE)",
    "mae": "mean absolute error (MAE)",
    "r2": "R² (explained variance)",
    "macro_f1": "macro F1 (mean over classes)",
    "mean_auroc": "mean AUROC over labels",
    "mean_auprc": "mean AUPRC over labels",
}
FIGURE_CAPTIONS = {
    "roc_pr": "ROC and precision-recall curves",
    "calibration": "Reliability diagram with 95 % Wilson intervals per bin",
    "confusion": "Confusion matrix at the bundle's decision threshold",
    "decision_curve": "Decision curve: net benefit across risk thresholds",
    "subgroups": "AUROC by subgroup with 95 % CIs",
    "missingness": "Share of stays with no observation of each variable",
    "importance": "Global variable importance (integrated gradients)",
    "example_integrated_gradients": "Example stay: integrated gradients per variable and hour",
    "example_occlusion": "Example stay: occlusion per variable and 6-hour block",
    "example_attention": "Example stay: attention weights over time",
    "predicted_observed": "Observed against predicted value, with the identity line",
    "residuals": "Distribution of residuals (observed - predicted)",
    "calibration_large": "Mean observed vs mean predicted per decile of prediction (95 % CIs)",
    "roc_ovr": "ROC curve of each class (one against the rest) or of each label",
    "confusion_internal": "Confusion matrix of the internal test set (row percentages)",
    "confusion_external": "Confusion matrix of the external set (row percentages)",
}


def fmt(value: Any, digits: int = 3) -> str:
    """A number as shown in the page: fixed digits, an en dash for missing values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.{digits}f}"


def figure_uri(png: bytes) -> str:
    """PNG bytes as a ``data:`` URI for an ``<img src>``."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_html(
    context: dict[str, Any], figures: dict[str, bytes], *, template: str = "report.html.j2"
) -> str:
    """The report page; ``figures`` maps a figure name to PNG bytes.

    ``template`` picks the page layout: ``report.html.j2`` for binary bundles (risks,
    thresholds, calibration maps) and ``report_regression.html.j2`` for regression ones,
    whose sections have no threshold or calibration map to show.
    """
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("medseq.report", "templates"),  # pages share partials
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["fmt"] = fmt
    env.globals.update(
        figure_uri=figure_uri,
        figures=figures,
        captions=FIGURE_CAPTIONS,
        metric_labels=METRIC_LABELS,
        medseq_version=__version__,
        repr_float=lambda v: repr(float(v)),
    )
    return env.get_template(template).render(**context)
