"""Metrics for multiclass and multilabel tasks, and bootstrap CIs of a whole metric table.

Multiclass metrics come from one confusion matrix (scikit-learn's), so every per-class
precision, recall (sensitivity) and F1 of a table is consistent with the matrix printed
beside it. Per-step (sequence-labelling) outputs are flattened to their labelled steps
first. Multilabel metrics are per label, on the samples where that label is known (NaN
marks a missing label, as in Tox21), then averaged over the labels that have both classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

from medseq.evaluation.bootstrap import CI

TableFn = Callable[[np.ndarray, np.ndarray], dict[str, float]]


def flatten_steps(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labelled samples of a multiclass task: (N,) and (N, K) as they are, or the
    labelled steps of per-step labels ``(N, T')`` and probabilities ``(N, T', K)``."""
    y, p = np.asarray(y_true, dtype=np.float64), np.asarray(y_prob, dtype=np.float64)
    if y.ndim == 2 and p.ndim == 3:
        steps = min(y.shape[1], p.shape[1])
        y, p = y[:, :steps].reshape(-1), p[:, :steps].reshape(-1, p.shape[-1])
    if y.ndim != 1 or p.ndim != 2 or len(y) != len(p):
        raise ValueError(
            f"multiclass metrics need y (N,) and probabilities (N, K); got {y.shape}, {p.shape}"
        )
    keep = ~np.isnan(y)
    if not keep.any():
        raise ValueError("multiclass metrics: no labelled samples")
    if not np.isfinite(p[keep]).all():
        raise ValueError("multiclass metrics: probabilities hold NaN or inf")
    return y[keep].astype(np.int64), p[keep]


def confusion(y_true: np.ndarray, y_prob: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix (rows: true class, columns: predicted = argmax) of every class."""
    y, p = flatten_steps(y_true, y_prob)
    return confusion_matrix(y, p.argmax(axis=1), labels=np.arange(n_classes))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def metrics_from_confusion(matrix: np.ndarray, class_names: Sequence[str]) -> dict[str, float]:
    """Accuracy, macro F1 and per-class precision (+P), recall (Se) and F1 of a matrix."""
    tp = np.diag(matrix).astype(np.float64)
    precision = _ratio(tp, matrix.sum(axis=0))
    recall = _ratio(tp, matrix.sum(axis=1))
    f1 = _ratio(2 * tp, matrix.sum(axis=0) + matrix.sum(axis=1))
    out = {
        "accuracy": float(tp.sum() / max(matrix.sum(), 1)),
        "macro_f1": float(np.nanmean(f1)) if np.isfinite(f1).any() else float("nan"),
        "balanced_accuracy": float(np.nanmean(recall)) if np.isfinite(recall).any() else np.nan,
    }
    for k, name in enumerate(class_names):
        out[f"precision_{name}"] = float(precision[k])
        out[f"recall_{name}"] = float(recall[k])
        out[f"f1_{name}"] = float(f1[k])
    return out


def multiclass_metrics(
    y_true: np.ndarray, y_prob: np.ndarray, class_names: Sequence[str]
) -> dict[str, float]:
    """:func:`metrics_from_confusion` of the argmax predictions."""
    return metrics_from_confusion(confusion(y_true, y_prob, len(class_names)), class_names)


def multilabel_metrics(
    y_true: np.ndarray, y_prob: np.ndarray, label_names: Sequence[str]
) -> dict[str, float]:
    """Per-label ROC-AUC and AUPRC on known labels, and their means over usable labels."""
    y, p = np.asarray(y_true, dtype=np.float64), np.asarray(y_prob, dtype=np.float64)
    if y.ndim != 2 or y.shape != p.shape or y.shape[1] != len(label_names):
        raise ValueError(
            f"multilabel metrics need y and probabilities of shape (N, {len(label_names)}); "
            f"got {y.shape} and {p.shape}"
        )
    out: dict[str, float] = {}
    aurocs, auprcs = [], []
    for k, name in enumerate(label_names):
        known = ~np.isnan(y[:, k])
        labels = y[known, k]
        auroc = auprc = float("nan")
        if known.any() and 0 < labels.sum() < len(labels):
            auroc = float(roc_auc_score(labels, p[known, k]))
            auprc = float(average_precision_score(labels, p[known, k]))
            aurocs.append(auroc)
            auprcs.append(auprc)
        out[f"auroc_{name}"], out[f"auprc_{name}"] = auroc, auprc
    if not aurocs:
        raise ValueError("multilabel metrics: no label has both classes among known values")
    return {"mean_auroc": float(np.mean(aurocs)), "mean_auprc": float(np.mean(auprcs)), **out}


def bootstrap_table(
    table: TableFn,
    y_true: np.ndarray,
    y_prob: np.ndarray,
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    random_state: int = 0,
    groups: object | None = None,
) -> dict[str, CI]:
    """Percentile CIs of every metric ``table`` returns, over sample resamples.

    Samples are the first axis (a patient, a recording, a molecule); a resample where a
    metric is undefined (NaN) is left out of that metric's interval only. With ``groups``
    (the patient of each sample) patients are resampled, each with all their samples
    (:func:`~medseq.evaluation.bootstrap.cluster_resample_indices`, unstratified), which is
    the per-sample resample when every patient has one sample.
    """
    from medseq.evaluation.bootstrap import Clusters

    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    y, p = np.asarray(y_true), np.asarray(y_prob)
    point = table(y, p)
    rng = np.random.default_rng(random_state)
    clusters = None if groups is None else Clusters(groups)
    if clusters is not None and clusters.n_samples_ != len(y):
        raise ValueError(f"groups names {clusters.n_samples_} samples, y_true has {len(y)}")
    draws: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(n_boot):
        if clusters is None:
            idx = rng.integers(0, len(y), len(y))
        else:
            idx = clusters.expand(rng.integers(0, len(clusters), len(clusters)))
        try:
            values = table(y[idx], p[idx])
        except ValueError:  # e.g. no label with both classes in this resample
            continue
        for key, value in values.items():
            if key in draws and np.isfinite(value):
                draws[key].append(value)
    out = {}
    for key, value in point.items():
        if draws[key]:
            lo, hi = np.quantile(draws[key], [alpha / 2.0, 1.0 - alpha / 2.0])
            out[key] = CI(float(value), float(lo), float(hi))
        else:
            out[key] = CI(float(value), float("nan"), float("nan"))
    return out
