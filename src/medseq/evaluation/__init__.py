"""Evaluation: metrics from scikit-learn, decision thresholds, bootstrap CIs, calibration,
tables.

Everything here takes plain arrays (labels and probabilities or predictions), so it works
the same for a medseq model, a baseline or predictions read back from a CSV file.

The names below are imported on first use (PEP 562), so that the serve-only install (no
scikit-learn) can import the numpy-only modules of this package, such as
:mod:`medseq.evaluation.conformal` for the REST answer's prediction sets.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "CI": "bootstrap",
    "BootstrapDistribution": "bootstrap",
    "bootstrap_ci": "bootstrap",
    "bootstrap_distribution": "bootstrap",
    "metrics_with_ci": "bootstrap",
    "resample_indices": "bootstrap",
    "cluster_resample_indices": "bootstrap",
    "ReliabilityCurve": "calibration",
    "apply_calibration": "calibration",
    "calibration_slope_intercept": "calibration",
    "expected_calibration_error": "calibration",
    "fit_calibration": "calibration",
    "reliability_curve": "calibration",
    "BINARY_METRICS": "metrics",
    "REGRESSION_METRICS": "metrics",
    "binary_metrics": "metrics",
    "regression_metrics": "metrics",
    "format_table": "table",
    "select_threshold": "threshold",
}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'medseq.evaluation' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"medseq.evaluation.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))
