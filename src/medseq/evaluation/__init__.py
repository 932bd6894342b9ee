"""Evaluation: metrics from scikit-learn, decision thresholds, bootstrap CIs, calibration,
tables.

Everything here takes plain arrays (labels and probabilities or predictions), so it works
the same for a medseq model, a baseline or predictions read back from a CSV file.
"""

from __future__ import annotations

from medseq.evaluation.bootstrap import (
    CI,
    BootstrapDistribution,
    bootstrap_ci,
    bootstrap_distribution,
    metrics_with_ci,
    resample_indices,
)
from medseq.evaluation.calibration import (
    ReliabilityCurve,
    apply_calibration,
    calibration_slope_intercept,
    expected_calibration_error,
    fit_calibration,
    reliability_curve,
)
from medseq.evaluation.metrics import (
    BINARY_METRICS,
    REGRESSION_METRICS,
    binary_metrics,
    regression_metrics,
)
from medseq.evaluation.table import format_table
from medseq.evaluation.threshold import select_threshold

__all__ = [
    "BINARY_METRICS",
    "CI",
    "REGRESSION_METRICS",
    "BootstrapDistribution",
    "ReliabilityCurve",
    "apply_calibration",
    "binary_metrics",
    "bootstrap_ci",
    "bootstrap_distribution",
    "calibration_slope_intercept",
    "expected_calibration_error",
    "fit_calibration",
    "format_table",
    "metrics_with_ci",
    "regression_metrics",
    "reliability_curve",
    "resample_indices",
    "select_threshold",
]
