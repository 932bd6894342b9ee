"""The conformal quantile and its finite-sample guarantee on exchangeable draws."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medseq.evaluation.conformal import conformal_quantile, fit_conformal, sets_from_probs
from medseq.evaluation.selective import risk_coverage


def test_quantile_is_the_ceil_n_plus_one_rank():
    scores = np.arange(1, 11) / 10  # 0.1 .. 1.0
    assert conformal_quantile(scores, 0.5) == pytest.approx(0.6)  # ceil(11 * 0.5) = 6th
    assert conformal_quantile(scores, 0.9) == pytest.approx(1.0)  # 10th
    assert conformal_quantile(scores, 0.95) == math.inf  # rank 11 > n: every class
    with pytest.raises(ValueError, match="coverage must be in"):
        conformal_quantile(scores, 1.0)


def test_coverage_holds_on_fresh_draws_from_the_same_model():
    rng = np.random.default_rng(0)
    covered = []
    for _ in range(40):
        p = rng.beta(2, 5, size=(1200, 3))
        p /= p.sum(axis=1, keepdims=True)
        y = np.array([rng.choice(3, p=row) for row in p])
        cal = fit_conformal("multiclass", y[:400], p[:400])
        sets = sets_from_probs(cal, p[400:], 0.9)
        covered.append(sets[np.arange(800), y[400:]].mean())
    assert 0.9 <= np.mean(covered) <= 0.93  # at least 1 - alpha, at most 1 - alpha + 1/(n+1)


def test_risk_coverage_error_falls_as_the_model_abstains():
    rng = np.random.default_rng(1)
    p = rng.random(2000)
    y = (rng.random(2000) < p).astype(int)
    rows = risk_coverage(y, p, "binary", threshold=0.5, points=10)
    assert rows[-1]["answer_rate"] == 1.0 and rows[0]["answer_rate"] == pytest.approx(0.1)
    assert rows[0]["error"] < rows[-1]["error"] / 2


def test_per_step_outputs_store_no_scores():
    rng = np.random.default_rng(2)
    assert fit_conformal("binary", rng.integers(0, 2, (6, 4)), rng.random((6, 4))) is None
    assert fit_conformal("multiclass", rng.integers(0, 3, (6, 4)), rng.random((6, 4, 3))) is None
