"""Coverage on cross-validation test parts: each part calibrated on the others only."""

from __future__ import annotations

import numpy as np
import pytest

from medseq.report.uncertainty import cross_fold_coverage


def _draws(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Three classes drawn from the very probabilities predicted (a calibrated model)."""
    probs = rng.dirichlet([1.0, 1.0, 1.0], size=n)
    y = np.array([rng.choice(3, p=p) for p in probs])
    return y, probs


@pytest.mark.parametrize("mondrian", [False, True])
def test_exchangeable_folds_are_covered_at_the_requested_rate(mondrian):
    rng = np.random.default_rng(0)
    y, probs = _draws(5000, rng)
    folds = np.arange(5000) % 5
    r = cross_fold_coverage("multiclass", y, probs, folds, 0.9, n_boot=200, mondrian=mondrian)
    assert [f["fold"] for f in r["folds"]] == [0, 1, 2, 3, 4]
    assert r["pooled"]["n"] == 5000
    assert abs(r["pooled"]["coverage"][0] - 0.9) < 0.02
    lo, hi = r["pooled"]["coverage"][1:]
    assert lo < r["pooled"]["coverage"][0] < hi
    assert 1.0 < r["pooled"]["set_size"][0] < 3.0


def test_a_fold_is_never_calibrated_on_itself():
    rng = np.random.default_rng(1)
    y, probs = _draws(2000, rng)
    folds = np.arange(2000) % 4
    wrong = folds == 2
    y = y.copy()
    y[wrong] = np.argmin(probs[wrong], axis=1)  # fold 2's model is confidently wrong
    r = cross_fold_coverage("multiclass", y, probs, folds, 0.9, n_boot=100)
    by_fold = {f["fold"]: f["coverage"][0] for f in r["folds"]}
    # calibrated on itself, fold 2 would reach 0.9; on the other folds it cannot
    assert by_fold[2] < 0.6 and min(by_fold[k] for k in (0, 1, 3)) > 0.8


def test_regression_parts_get_intervals():
    rng = np.random.default_rng(2)
    pred = rng.normal(size=1000)
    y = pred + rng.normal(scale=2.0, size=1000)
    r = cross_fold_coverage("regression", y, pred, np.arange(1000) % 2, 0.8, n_boot=100)
    assert abs(r["pooled"]["coverage"][0] - 0.8) < 0.05
    assert r["pooled"]["set_size"][0] == pytest.approx(2 * 1.2816 * 2.0, rel=0.15)


def test_bad_input_is_refused_with_a_sentence():
    y, probs = _draws(10, np.random.default_rng(3))
    with pytest.raises(ValueError, match="one of each per case"):
        cross_fold_coverage("multiclass", y, probs, np.zeros(9), 0.9, n_boot=10)
    with pytest.raises(ValueError, match="at least two folds"):
        cross_fold_coverage("multiclass", y, probs, np.zeros(10), 0.9, n_boot=10)
