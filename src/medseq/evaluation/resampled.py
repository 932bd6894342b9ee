"""Metrics of many bootstrap resamples at once: one row of a (n_boot, N) array per resample.

Each function equals its scikit-learn counterpart row by row (the tests check this), but
runs as a few numpy operations over the whole array instead of a Python loop of
``n_boot`` scikit-learn calls: 1000-resample CIs of all nine binary metrics on 4000
patients take about a second on one CPU core.

AUROC uses the Mann-Whitney form with mid-ranks for ties; average precision sums, over
positives, the precision at the end of their group of tied scores, which is how
scikit-learn handles ties.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import rankdata

RowMetric = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den``, 0 where ``den`` is 0 (scikit-learn's ``zero_division=0``)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def auroc_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """AUROC per row; every row must contain both classes."""
    ranks = rankdata(p, axis=1)  # average ranks for ties
    n_pos = y.sum(axis=1)
    n_neg = y.shape[1] - n_pos
    rank_sum = np.where(y == 1, ranks, 0.0).sum(axis=1)
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def auprc_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Average precision per row (``sklearn.metrics.average_precision_score``)."""
    order = np.argsort(-p, axis=1, kind="stable")
    scores = np.take_along_axis(p, order, axis=1)
    labels = np.take_along_axis(y, order, axis=1).astype(np.float64)
    n = y.shape[1]
    tp = np.cumsum(labels, axis=1)
    precision = tp / np.arange(1, n + 1)
    # The last position of each run of tied scores is where that threshold is evaluated.
    is_end = np.ones_like(scores, dtype=bool)
    is_end[:, :-1] = scores[:, :-1] != scores[:, 1:]
    end_index = np.where(is_end, np.arange(n), n)
    end_index = np.minimum.accumulate(end_index[:, ::-1], axis=1)[:, ::-1]
    precision_at_end = np.take_along_axis(precision, end_index, axis=1)
    return (labels * precision_at_end).sum(axis=1) / labels.sum(axis=1)


def _confusion(y: np.ndarray, p: np.ndarray, threshold: float) -> tuple[np.ndarray, ...]:
    pred = p >= threshold
    pos = y == 1
    tp = (pred & pos).sum(axis=1)
    fp = (pred & ~pos).sum(axis=1)
    fn = (~pred & pos).sum(axis=1)
    tn = (~pred & ~pos).sum(axis=1)
    return tp, fp, fn, tn


def binary_row_metrics(threshold: float) -> dict[str, RowMetric]:
    """Row-wise versions of ``medseq.evaluation.metrics.binary_metric_functions``."""

    def accuracy(y: np.ndarray, p: np.ndarray) -> np.ndarray:
        tp, _, _, tn = _confusion(y, p, threshold)
        return (tp + tn) / y.shape[1]

    def precision(y: np.ndarray, p: np.ndarray) -> np.ndarray:
        tp, fp, _, _ = _confusion(y, p, threshold)
        return _safe_divide(tp, tp + fp)

    def recall(y: np.ndarray, p: np.ndarray) -> np.ndarray:
        tp, _, fn, _ = _confusion(y, p, threshold)
        return _safe_divide(tp, tp + fn)

    def specificity(y: np.ndarray, p: np.ndarray) -> np.ndarray:
        _, fp, _, tn = _confusion(y, p, threshold)
        return _safe_divide(tn, tn + fp)

    def f1(y: np.ndarray, p: np.ndarray) -> np.ndarray:
        tp, fp, fn, _ = _confusion(y, p, threshold)
        return _safe_divide(2 * tp, 2 * tp + fp + fn)

    return {
        "auroc": auroc_rows,
        "auprc": auprc_rows,
        "accuracy": accuracy,
        "balanced_accuracy": lambda y, p: (recall(y, p) + specificity(y, p)) / 2.0,
        "precision": precision,
        "recall": recall,
        "specificity": specificity,
        "f1": f1,
        "brier": lambda y, p: np.mean((p - y) ** 2, axis=1),
    }


def _r2_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    ss_res = ((y - p) ** 2).sum(axis=1)
    ss_tot = ((y - y.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    constant = ss_tot == 0  # scikit-learn's force_finite: 1 if perfect, else 0
    r2 = 1.0 - _safe_divide(ss_res, ss_tot)
    return np.where(constant, np.where(ss_res == 0, 1.0, 0.0), r2)


def regression_row_metrics() -> dict[str, RowMetric]:
    """Row-wise versions of ``medseq.evaluation.metrics.regression_metric_functions``."""
    return {
        "mse": lambda y, p: np.mean((y - p) ** 2, axis=1),
        "rmse": lambda y, p: np.sqrt(np.mean((y - p) ** 2, axis=1)),
        "mae": lambda y, p: np.mean(np.abs(y - p), axis=1),
        "r2": _r2_rows,
    }
