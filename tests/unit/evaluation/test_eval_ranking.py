"""recall@k and micro AUROC of multi-label predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medseq.evaluation.ranking import micro_auroc, ranking_metrics, recall_at_k


def test_recall_at_k_by_hand():
    y = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]])
    s = np.array([[0.9, 0.8, 0.1, 0.0], [0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.5, 0.5]])
    # sample 0: top-2 = {0, 1} holds 1 of 2; sample 1: top-2 = {3, 2} holds 0 of 1.
    assert recall_at_k(y, s, 2) == pytest.approx((0.5 + 0.0) / 2)  # sample 2 has no label
    assert recall_at_k(y, s, 1) == pytest.approx((0.5 + 0.0) / 2)
    assert recall_at_k(y, s, 3) == pytest.approx((1.0 + 1.0) / 2)
    assert recall_at_k(y, s, 100) == 1.0
    y_nan = y.astype(float)
    y_nan[0, 2] = np.nan  # unknown: not a true group
    assert recall_at_k(y_nan, s, 1) == pytest.approx((1.0 + 0.0) / 2)
    assert np.isnan(recall_at_k(np.zeros((2, 3)), np.ones((2, 3)), 1))


def test_errors_and_micro_auroc():
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        recall_at_k(np.ones((1, 2)), np.ones((1, 2)), 0)
    with pytest.raises(ValueError, match=r"must be \(N, K\)"):
        recall_at_k(np.ones((1, 2)), np.ones((1, 3)), 1)
    with pytest.raises(ValueError, match="NaN or inf"):
        recall_at_k(np.ones((1, 2)), np.array([[np.nan, 1.0]]), 1)
    rng = np.random.default_rng(0)
    y, s = (rng.random((20, 5)) < 0.3).astype(float), rng.random((20, 5))
    assert micro_auroc(y, s) == pytest.approx(roc_auc_score(y.ravel(), s.ravel()))
    assert set(ranking_metrics(y, s)) == {"recall@10", "recall@20", "recall@30", "micro_auroc"}
