"""The Challenge 2019 normalized utility against cases computed by hand.

The septic stay ``SEPTIC`` has 20 hours, labelled 1 from row 10, so onset t_sepsis = 16 and
row t sits at d = t - 16 (d = -16 .. 3). By the definition:
U_none  = missed hours d = -5..3: -(2/9)(1 + ... + 9) = -10;
U_best  = early ramp d = -12..-6: (0 + 1 + ... + 6)/6 = 3.5, plus late d = -5..3:
          (8 + 7 + ... + 0)/9 = 4, so 7.5; the span U_best - U_none = 17.5.
"""

from __future__ import annotations

import numpy as np
import pytest

from medseq.evaluation.utility import (
    UtilityParams,
    best_utility_threshold,
    hourly_utility,
    normalized_utility,
)

SEPTIC = np.r_[np.zeros(10), np.ones(10)]


def hours(*rows: int, n: int = 20) -> np.ndarray:
    out = np.zeros(n)
    out[list(rows)] = 1
    return out


def score(pred: np.ndarray) -> float:
    return normalized_utility(SEPTIC, pred, [20])


def test_per_hour_rewards_follow_the_definition():
    h = hourly_utility(SEPTIC, [20])
    d = np.arange(20) - 16
    expected_pos = [-0.05] * 4 + [k / 6 for k in range(7)] + [(3 - k) / 9 for k in range(-5, 4)]
    expected_neg = [0.0] * 11 + [-2 * (k + 6) / 9 for k in range(-5, 4)]
    np.testing.assert_allclose(h.positive, expected_pos)
    np.testing.assert_allclose(h.negative, expected_neg)
    assert h.best.tolist() == (d >= -12).tolist()


def test_bounds_ideal_is_one_and_none_is_zero():
    ideal = (np.arange(20) >= 4).astype(float)  # t_sepsis - 12 .. end (= t_sepsis + 3)
    assert score(ideal) == pytest.approx(1.0)
    assert score(np.zeros(20)) == 0.0


def test_predicted_in_the_optimal_window():
    # Alarm from t_sepsis - 6 (row 10) on: 1 + 4 = 5, so (5 + 10) / 17.5.
    assert score((np.arange(20) >= 10).astype(float)) == pytest.approx(15 / 17.5)
    # One alarm exactly at t_sepsis - 6, nothing after: 1 - 10 = -9.
    assert score(hours(10)) == pytest.approx(1 / 17.5)


def test_too_early_is_a_false_alarm():
    # Rows 0-3 are more than 12 h before onset: -0.05 each, and the onset is still missed.
    assert score(hours(0, 1, 2, 3)) == pytest.approx(-0.2 / 17.5)


def test_too_late():
    # Alarms at d = 1, 2, 3: (2 + 1 + 0)/9; missed d = -5..0: -(2/9)(1 + ... + 6) = -42/9.
    assert score(hours(17, 18, 19)) == pytest.approx((3 / 9 - 42 / 9 + 10) / 17.5)


def test_non_septic_false_alarm_costs_005_each():
    labels = np.r_[SEPTIC, np.zeros(5)]
    ideal = np.r_[(np.arange(20) >= 4), [1, 0, 1, 0, 0]].astype(float)
    assert normalized_utility(labels, ideal, [20, 5]) == pytest.approx((7.5 - 0.1 + 10) / 17.5)


def test_stay_shorter_than_the_window():
    # 4 hours, all labelled 1: onset 6 h after the first row, so d = -6..-3.
    # U_best = 1 + (8 + 7 + 6)/9, U_none = -(2/9)(1 + 2 + 3); an alarm at row 0 only: 1 - 12/9.
    labels = np.ones(4)
    assert normalized_utility(labels, np.ones(4), [4]) == pytest.approx(1.0)
    assert normalized_utility(labels, np.zeros(4), [4]) == 0.0
    assert normalized_utility(labels, [1, 0, 0, 0], [4]) == pytest.approx(1 / (21 / 9 + 1 + 12 / 9))


def test_cohort_without_septic_stays_is_nan_and_bad_input_is_named():
    assert np.isnan(normalized_utility(np.zeros(5), np.ones(5), [5]))
    with pytest.raises(ValueError, match="lengths add up to 4"):
        normalized_utility(np.zeros(5), np.zeros(5), [4])
    with pytest.raises(ValueError, match="binary"):
        normalized_utility(SEPTIC, np.full(20, 0.3), [20])
    with pytest.raises(ValueError, match="dt_early < dt_optimal"):
        UtilityParams(dt_early=0)


def test_best_threshold_finds_the_ideal_ranking_and_refuses_alarms_when_they_cost():
    labels = np.r_[SEPTIC, np.zeros(30)]
    risks = np.r_[np.where(np.arange(20) >= 4, 0.9, 0.2), np.full(30, 0.5)]
    threshold, utility = best_utility_threshold(labels, risks, [20, 30])
    assert threshold == 0.9 and utility == pytest.approx(1.0)
    # 400 false-alarm hours ranked above the septic stay: alarming on them alone costs 20,
    # alarming on everything 20 - 7.3 (the septic stay's hours when all positive): both
    # worse than predicting nothing, so no threshold is chosen.
    long_labels = np.r_[SEPTIC, np.zeros(400)]
    long_risks = np.r_[np.full(20, 0.1), np.ones(400)]
    assert best_utility_threshold(long_labels, long_risks, [20, 400]) == (float("inf"), 0.0)
