"""Early-warning figures on stays whose alarms are placed by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medseq.evaluation.early_warning import early_warning_metrics, early_warning_with_ci
from medseq.evaluation.utility import normalized_utility

# Stay 0: septic, 20 h, labelled from row 10 (onset t_sepsis = 16, row t at d = t - 16).
# Stay 1: non-septic, 24 h.  Stay 2: septic like stay 0.
LABELS = np.r_[np.zeros(10), np.ones(10), np.zeros(24), np.zeros(10), np.ones(10)]
LENGTHS = [20, 24, 20]


def risks_with_alarms_at(*alarms: tuple[int, int]) -> np.ndarray:
    """0.1 everywhere, 0.9 at (stay, row) of each alarm."""
    out = np.full(len(LABELS), 0.1)
    start = np.cumsum(LENGTHS) - LENGTHS
    for stay, row in alarms:
        out[start[stay] + row] = 0.9
    return out


ALARMS = [(0, 6), (0, 7), (0, 17), (1, 2), (1, 3), (1, 10), (2, 2)]


def test_detection_lead_and_false_alarms():
    risks = risks_with_alarms_at(*ALARMS)
    got = early_warning_metrics(LABELS, risks, LENGTHS, threshold=0.5)
    # Stay 0 alarmed at d = -10 (in the 12 h before onset): detected 10 h early. Stay 2's only
    # alarm is at d = -14, too early: a false alarm, not a detection.
    assert got["detected"] == 0.5
    assert got["median_hours_before_onset"] == 10.0
    # False episodes: two in stay 1 (rows 2-3 and 10) and one in stay 2 (d = -14); stay 0's
    # alarms at d = -10 and d = +1 are not false. 64 hours = 64/24 patient-days.
    assert got["false_alarms_per_100_patient_days"] == pytest.approx(100 * 3 / (64 / 24))
    assert got["auroc"] == pytest.approx(roc_auc_score(LABELS, risks))
    assert got["utility"] == pytest.approx(normalized_utility(LABELS, risks >= 0.5, LENGTHS))


def test_bootstrap_intervals_hold_the_point_and_repeat_with_the_seed():
    rng = np.random.default_rng(0)
    labels = np.tile(LABELS, 10)
    lengths = LENGTHS * 10
    risks = np.clip(labels * 0.3 + rng.random(len(labels)) * 0.7, 0, 1)
    first = early_warning_with_ci(labels, risks, lengths, threshold=0.6, n_boot=50)
    again = early_warning_with_ci(labels, risks, lengths, threshold=0.6, n_boot=50)
    assert first == again
    for name, (point, lo, hi) in first.items():
        assert lo <= hi, name
        assert lo - 1e-9 <= point <= hi + 1e-9 or name == "median_hours_before_onset", name
    assert 0.5 < first["auroc"].point < 1.0


def test_bad_risks_are_named():
    with pytest.raises(ValueError, match="risks must be 64 finite values"):
        early_warning_metrics(LABELS, np.zeros(3), LENGTHS, threshold=0.5)
