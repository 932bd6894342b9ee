"""The numbers and figures of the report for a regression bundle (e.g. length of stay).

The binary report speaks of risks, thresholds and calibration maps; none of these exist
for a continuous target. This module gives the same sections on the regression scale:
MSE, RMSE, MAE and R^2 with bootstrap CIs (the numbers of ``medseq evaluate``), the
predicted-vs-observed, residual and calibration-in-the-large figures, and the subgroup
table with the same "differs from the rest beyond its CI" flag as the binary one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from medseq.evaluation import metrics_with_ci
from medseq.report import figures, regression_figures
from medseq.report.datasets import EvaluatedSet
from medseq.report.subgroups import _compare, iter_subgroups, subgroups_for

REGRESSION_SUBGROUP_METRICS: tuple[str, ...] = ("mae", "r2")
TASK_UNITS = {"length_of_stay": "days"}
Figures = dict[str, bytes]


def unit_for(task: str) -> str:
    """The unit of a task's target ("" when the task registers none), for labels."""
    return TASK_UNITS.get(task, "")


def set_metrics(ev: EvaluatedSet, *, n_boot: int, random_state: int = 0) -> dict[str, Any]:
    """MSE, RMSE, MAE and R^2 with 95 % bootstrap CIs, and the mean target and prediction.

    Calls :func:`~medseq.evaluation.metrics_with_ci` exactly as ``medseq evaluate`` does,
    so the report and the command agree to the last digit.
    """
    table = metrics_with_ci(
        ev.y, ev.risk, task="regression", n_boot=n_boot, random_state=random_state,
        groups=ev.groups,
    )  # fmt: skip
    return {
        "name": ev.name,
        "path": ev.path,
        "sha256": ev.sha256,
        "n": len(ev.y),
        "mean_observed": float(np.mean(ev.y)),
        "mean_predicted": float(np.mean(ev.risk)),
        "metrics": {k: [float(x) for x in v] for k, v in table.items()},
    }


def performance_figures(sets: Mapping[str, EvaluatedSet], n_bins: int, unit: str) -> Figures:
    """Predicted vs observed, residuals and calibration-in-the-large, all sets together."""
    pairs = {ev.name: (ev.y, ev.risk) for ev in sets.values()}
    return {
        "predicted_observed": regression_figures.predicted_observed_figure(pairs, unit=unit),
        "residuals": regression_figures.residual_figure(pairs, unit=unit),
        "calibration_large": regression_figures.decile_calibration_figure(
            pairs, n_bins=n_bins, unit=unit
        ),
    }


def drift(internal: dict[str, Any], external: dict[str, Any]) -> dict[str, float]:
    """External minus internal for every metric, and for the mean prediction error."""
    out = {k: external["metrics"][k][0] - v[0] for k, v in internal["metrics"].items()}
    out["mean_error"] = (external["mean_predicted"] - external["mean_observed"]) - (
        internal["mean_predicted"] - internal["mean_observed"]
    )
    return out


def drift_notes(d: dict[str, float], unit: str) -> list[str]:
    """Plain-language limitations from the external drift."""
    notes = []
    if d.get("r2", 0.0) < -0.05:
        notes.append(f"R² falls by {-d['r2']:.3f} on the external set.")
    if abs(d.get("mean_error", 0.0)) > 0.5:
        notes.append(
            f"The mean prediction error changes by {d['mean_error']:+.2f} {unit} on the "
            "external set (calibration in the large drifts)."
        )
    return notes


def subgroup_table(
    y_true: object,
    y_pred: object,
    groups: Mapping[str, pd.Series],
    *,
    metrics: Sequence[str] = REGRESSION_SUBGROUP_METRICS,
    n_boot: int = 1000,
    random_state: int = 0,
    min_size: int = 30,
) -> pd.DataFrame:
    """Regression metrics with 95 % CIs per subgroup, each compared with the rest.

    Same comparison and flag as :func:`medseq.report.subgroups.subgroup_table`
    (independent resamples of the subgroup and of the rest; flagged when the 95 % CI of
    the difference excludes 0), with plain (unstratified) resampling, as a continuous
    target has no classes.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
    groups : mapping of str to Series of length n_samples
    metrics : sequence of str, default=("mae", "r2")
    n_boot : int, default=1000
    random_state : int, default=0
    min_size : int, default=30

    Returns
    -------
    pandas.DataFrame
        Long format: ``attribute``, ``group``, ``n``, ``metric``, ``value``, ``lo``,
        ``hi``, ``rest``, ``diff_lo``, ``diff_hi``, ``flag``, ``note``.
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    settings = {"n_boot": n_boot, "random_state": random_state, "stratified": False}
    rows = []
    for attribute, group, inside in iter_subgroups(groups, len(y)):
        base = {"attribute": attribute, "group": group}
        rows += _group_rows(y, p, inside, base, metrics, settings, min_size)
    columns = ["attribute", "group", "n", "metric", "value", "lo", "hi", "rest"]
    columns += ["diff_lo", "diff_hi", "flag", "note"]
    return pd.DataFrame(rows).reindex(columns=columns)


def _group_rows(
    y: np.ndarray,
    p: np.ndarray,
    inside: np.ndarray,
    base: dict,
    metrics: Sequence[str],
    settings: dict,
    min_size: int,
) -> list[dict]:
    """One row per metric for a group, or one "too small" row (intervals unreadable)."""
    base = base | {"n": int(inside.sum())}
    if inside.sum() < min_size or (~inside).sum() < 2:
        return [base | {"metric": "", "flag": False, "note": "too small to estimate"}]
    return [base | {"metric": m} | _compare(y, p, inside, m, settings) for m in metrics]


def subgroup_section(
    bundle, ev: EvaluatedSet, *, n_boot: int, random_state: int = 0
) -> tuple[pd.DataFrame | None, Figures]:
    """Subgroup table of the internal set and its MAE forest plot (None: no definitions)."""
    groups = subgroups_for(bundle, ev)
    if not groups:
        return None, {}
    table = subgroup_table(ev.y, ev.risk, groups, n_boot=n_boot, random_state=random_state)
    overall = float(np.mean(np.abs(ev.y - ev.risk)))
    return table, {"subgroups": figures.subgroup_figure(table, overall, "mae")}
