"""The numbers of each report section, computed from scored sets (no HTML here).

Each function returns plain data (dicts, DataFrames) plus the PNG figures of its section,
so the HTML template, the model card and the tests all read the same numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medseq.evaluation import bootstrap_ci, metrics_with_ci
from medseq.evaluation.calibration import calibration_slope_intercept, expected_calibration_error
from medseq.report import figures
from medseq.report.datasets import EvaluatedSet
from medseq.report.decision import decision_curve

Figures = dict[str, bytes]


def set_metrics(
    bundle, ev: EvaluatedSet, *, n_boot: int, n_bins: int, random_state: int = 0
) -> dict[str, Any]:
    """Metrics with 95 % CIs at the bundle's threshold, plus ECE (also with a CI).

    The binary metrics are exactly those of ``medseq evaluate`` (same function, same
    resamples), so the report and the command agree to the last digit.
    """
    table = metrics_with_ci(
        ev.y,
        ev.risk,
        task="binary",
        threshold=bundle.threshold,
        n_boot=n_boot,
        random_state=random_state,
        groups=ev.groups,
    )
    ece = bootstrap_ci(
        ev.y,
        ev.risk,
        lambda y, p: expected_calibration_error(y, p, n_bins),
        n_boot=n_boot,
        random_state=random_state,
        groups=ev.groups,
    )
    metrics = {k: [float(x) for x in v] for k, v in table.items()}
    metrics["ece"] = [float(x) for x in ece]
    return {
        "name": ev.name,
        "path": ev.path,
        "sha256": ev.sha256,
        "n": len(ev.y),
        "n_positive": int(ev.y.sum()),
        "metrics": metrics,
        "calibration": calibration_summary(bundle, ev, n_bins),
    }


def calibration_summary(bundle, ev: EvaluatedSet, n_bins: int) -> dict[str, float]:
    """ECE, calibration slope and intercept, and observed/expected ratio, raw and calibrated."""
    out: dict[str, float] = {}
    variants = {"raw": ev.risk}
    if bundle.calibration is not None:
        variants["calibrated"] = bundle.calibrate(ev.risk)
    for tag, p in variants.items():
        slope, intercept = calibration_slope_intercept(ev.y, p)
        out[f"ece_{tag}"] = expected_calibration_error(ev.y, p, n_bins)
        out[f"brier_{tag}"] = float(np.mean((p - ev.y) ** 2))
        out[f"slope_{tag}"] = slope
        out[f"intercept_{tag}"] = intercept
        out[f"observed_expected_{tag}"] = float(ev.y.sum() / p.sum())
    return out


def performance_figures(bundle, sets: dict[str, EvaluatedSet], n_bins: int) -> Figures:
    """ROC/PR, reliability (raw and calibrated), confusion matrix and decision curve."""
    curves = {ev.name: (ev.y, ev.risk) for ev in sets.values()}
    reliability = dict(curves)
    if bundle.calibration is not None:
        for ev in sets.values():
            reliability[f"{ev.name}, calibrated"] = (ev.y, bundle.calibrate(ev.risk))
    internal = sets["internal"]
    return {
        "roc_pr": figures.roc_pr_figure(curves),
        "calibration": figures.reliability_figure(reliability, n_bins=n_bins),
        "confusion": figures.confusion_figure(internal.y, internal.risk, bundle.threshold),
        "decision_curve": figures.decision_curve_figure(
            {ev.name: decision_curve(ev.y, ev.risk) for ev in sets.values()}
        ),
    }


def drift(internal: dict[str, Any], external: dict[str, Any]) -> dict[str, float]:
    """External minus internal, for every metric and calibration number they share."""
    out = {
        k: external["metrics"][k][0] - v[0]
        for k, v in internal["metrics"].items()
        if k in external["metrics"]
    }
    for k, v in internal["calibration"].items():
        if k in external["calibration"]:
            out[k] = external["calibration"][k] - v
    return out


def drift_notes(d: dict[str, float]) -> list[str]:
    """Plain-language limitations from the external drift."""
    notes = []
    if d.get("auroc", 0.0) < -0.03:
        notes.append(f"AUROC falls by {-d['auroc']:.3f} on the external set.")
    if abs(d.get("ece_raw", 0.0)) > 0.02:
        notes.append(f"Calibration error changes by {d['ece_raw']:+.3f} (ECE) on the external set.")
    return notes
