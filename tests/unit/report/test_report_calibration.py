"""Calibration: reliability curve, ECE; temperature and Platt maps recover known errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medseq.evaluation.calibration import (
    apply_calibration,
    calibration_slope_intercept,
    expected_calibration_error,
    fit_calibration,
    reliability_curve,
)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture(scope="module")
def overconfident():
    """True risk sigmoid(z - 1); the model reports sigmoid(2 z - 2): temperature 2."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, 40_000)
    y = (rng.random(z.size) < _sigmoid(z - 1)).astype(float)
    return y, _sigmoid(2 * (z - 1)), _sigmoid(z - 1)


def test_temperature_scaling_recovers_the_temperature(overconfident):
    y, p, truth = overconfident
    params = fit_calibration(y, p, method="temperature")
    assert params["temperature"] == pytest.approx(2.0, rel=0.05)
    assert params["ece_after"] < params["ece_before"] / 3
    assert params["nll_after"] < params["nll_before"]
    np.testing.assert_allclose(apply_calibration(p, params), truth, atol=0.03)
    assert json.loads(json.dumps(params)) == params  # plain JSON, stored as is in a bundle


def test_platt_scaling_recovers_slope_and_intercept():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, 40_000)
    y = (rng.random(z.size) < _sigmoid(0.5 * z - 1.0)).astype(float)
    params = fit_calibration(y, _sigmoid(z), method="platt")
    assert params["slope"] == pytest.approx(0.5, abs=0.03)
    assert params["intercept"] == pytest.approx(-1.0, abs=0.05)
    slope, intercept = calibration_slope_intercept(y, _sigmoid(z))
    assert (slope, intercept) == pytest.approx((params["slope"], params["intercept"]))


@pytest.mark.parametrize("method", ["temperature", "platt"])
def test_maps_are_monotone_so_ranking_and_decisions_are_kept(overconfident, method):
    y, p, _ = overconfident
    params = fit_calibration(y, p, method=method)
    q = apply_calibration(p, params)
    assert roc_auc_score(y, q) == pytest.approx(roc_auc_score(y, p), abs=1e-9)
    t = 0.3
    t_cal = float(apply_calibration(t, params))
    assert np.array_equal(p >= t, q >= t_cal)


def test_ece_of_a_hand_computed_example():
    # bins [0, .5) and [.5, 1]: means 0.2 and 0.8, observed 0.5 and 1.0
    y = [0, 1, 1, 1]
    p = [0.1, 0.3, 0.7, 0.9]
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.5 * 0.3 + 0.5 * 0.2)
    curve = reliability_curve(y, p, n_bins=2)
    assert curve.counts.tolist() == [2, 2]
    assert np.all(curve.lo <= curve.observed) and np.all(curve.observed <= curve.hi)


def test_ece_is_small_for_a_calibrated_model(overconfident):
    y, _, truth = overconfident
    assert expected_calibration_error(y, truth) < 0.01
    curve = reliability_curve(y, truth, n_bins=10, strategy="quantile")
    assert curve.counts.sum() == len(y)
    assert np.mean((curve.lo <= curve.mean_predicted) & (curve.mean_predicted <= curve.hi)) >= 0.8


def test_bad_inputs_fail_with_a_reason():
    with pytest.raises(ValueError, match="method must be"):
        fit_calibration([0, 1], [0.2, 0.8], method="isotonic")
    with pytest.raises(ValueError, match="anti-correlated"):
        fit_calibration([1, 1, 0, 0, 1, 0], [0.1, 0.2, 0.8, 0.9, 0.3, 0.7], method="platt")
    with pytest.raises(ValueError, match="probabilities"):
        fit_calibration([0, 1], [-1.0, 2.0])
    with pytest.raises(ValueError, match="temperature must be > 0"):
        apply_calibration(0.5, {"method": "temperature", "temperature": 0.0})
    with pytest.raises(ValueError, match="strategy"):
        reliability_curve([0, 1], [0.2, 0.8], strategy="log")
