"""Regression sections of the report: calibration in the large, subgroups, figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medseq.evaluation import metrics_with_ci
from medseq.report import regression
from medseq.report.datasets import EvaluatedSet
from medseq.report.regression_figures import (
    decile_calibration,
    decile_calibration_figure,
    predicted_observed_figure,
    residual_figure,
)

PNG = b"\x89PNG\r\n\x1a\n"


def _data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.gamma(2.0, 4.0, n)
    return y, y + rng.normal(0.0, 2.0, n)


def test_decile_calibration_matches_a_reference_loop():
    y, p = _data()
    table = decile_calibration(y, p, n_bins=10)
    assert len(table) == 10 and table["n"].sum() == len(y)
    order = np.argsort(p, kind="stable")
    for k, chunk in enumerate(np.array_split(order, 10)):
        assert table["mean_predicted"][k] == pytest.approx(p[chunk].mean())
        assert table["mean_observed"][k] == pytest.approx(y[chunk].mean())
        half = 1.96 * y[chunk].std(ddof=1) / np.sqrt(len(chunk))
        assert table["hi"][k] - table["mean_observed"][k] == pytest.approx(half)


def test_set_metrics_are_those_of_metrics_with_ci():
    y, p = _data()
    ev = EvaluatedSet("internal test", "", None, np.arange(len(y)), y, {}, p)
    out = regression.set_metrics(ev, n_boot=50, random_state=0)
    expected = metrics_with_ci(y, p, task="regression", n_boot=50, random_state=0)
    assert out["metrics"] == {k: [float(x) for x in v] for k, v in expected.items()}
    assert set(out["metrics"]) == {"mse", "rmse", "mae", "r2"}
    assert out["mean_observed"] == pytest.approx(y.mean())


def test_subgroup_with_larger_errors_is_flagged_and_small_groups_are_listed():
    y, p = _data(n=600)
    group = pd.Series(np.where(np.arange(600) < 200, "noisy", "clean"))
    group[:10] = "tiny"
    p = p.copy()
    p[:200] += np.random.default_rng(1).normal(0.0, 8.0, 200)
    table = regression.subgroup_table(y, p, {"site": group}, n_boot=200)
    mae = table[(table["metric"] == "mae")].set_index("group")
    assert mae.loc["noisy", "flag"] and mae.loc["noisy", "diff_lo"] > 0
    assert mae.loc["noisy", "value"] == pytest.approx(np.abs(y[10:200] - p[10:200]).mean())
    tiny = table[table["group"] == "tiny"]
    assert len(tiny) == 1 and tiny["note"].iloc[0] == "too small to estimate"


def test_figures_are_png_with_units():
    y, p = _data()
    pairs = {"internal test": (y, p), "external": (y[::-1], p)}
    for png in (
        predicted_observed_figure(pairs, unit="days"),
        residual_figure(pairs, unit="days"),
        decile_calibration_figure(pairs, unit="days"),
    ):
        assert png.startswith(PNG)
    assert regression.unit_for("length_of_stay") == "days"
    assert regression.unit_for("some_new_task") == ""
