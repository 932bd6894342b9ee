"""Ranking metrics of multi-label predictions: recall@k (Doctor AI) and micro-averaged AUROC.

Doctor AI (Choi et al., 2016) scores next-visit diagnosis prediction by recall@k: of the
groups actually coded at the next visit, the share found among the k highest-scored
groups, averaged over samples. It rewards a useful short list rather than a calibrated
probability per group, which is what a clinician scanning the top of a list needs.
"""

from __future__ import annotations

import numpy as np


def recall_at_k(y_true: np.ndarray, y_score: np.ndarray, k: int) -> float:
    """Mean over samples of |top-k scored ∩ true| / |true|.

    Parameters
    ----------
    y_true : ndarray of shape (N, K)
        0/1 (NaN counts as 0: an unknown group is not a hit).
    y_score : ndarray of shape (N, K)
        Scores; ties are broken by column order (stable sort).
    k : int
        List length, >= 1 (all K columns if larger).

    Returns
    -------
    float
        NaN when no sample has a true group.

    Examples
    --------
    >>> recall_at_k(np.array([[1, 0, 1]]), np.array([[0.9, 0.8, 0.1]]), k=2)
    0.5
    """
    y = np.nan_to_num(np.asarray(y_true, dtype=np.float64)) > 0
    s = np.asarray(y_score, dtype=np.float64)
    if y.ndim != 2 or y.shape != s.shape:
        raise ValueError(
            f"recall_at_k: y_true and y_score must be (N, K), got {y.shape}, {s.shape}"
        )
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"recall_at_k: k must be an integer >= 1, got {k!r}")
    if not np.isfinite(s).all():
        raise ValueError("recall_at_k: y_score holds NaN or inf")
    top = np.argsort(-s, axis=1, kind="stable")[:, : min(int(k), s.shape[1])]
    hits = np.take_along_axis(y, top, axis=1).sum(axis=1)
    n_true = y.sum(axis=1)
    has = n_true > 0
    if not has.any():
        return float("nan")
    return float(np.mean(hits[has] / n_true[has]))


def micro_auroc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """ROC AUC over every (sample, label) pair with a known label (scikit-learn)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y_true, dtype=np.float64).ravel()
    s = np.asarray(y_score, dtype=np.float64).ravel()
    known = ~np.isnan(y)
    if len(np.unique(y[known])) < 2:
        return float("nan")
    return float(roc_auc_score(y[known], s[known]))


def ranking_metrics(
    y_true: np.ndarray, y_score: np.ndarray, ks: tuple[int, ...] = (10, 20, 30)
) -> dict[str, float]:
    """``recall@k`` for each k and ``micro_auroc``."""
    out = {f"recall@{k}": recall_at_k(y_true, y_score, k) for k in ks}
    out["micro_auroc"] = micro_auroc(y_true, y_score)
    return out
