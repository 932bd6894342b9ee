"""Point metrics for binary classification and regression, computed by scikit-learn.

Inputs are checked once here, so every number reported by medseq comes from labels and
predictions that have the same length, no NaN, labels in {0, 1} and probabilities in
[0, 1]; a mistake such as passing logits instead of probabilities fails with a message
that says so instead of producing a plausible-looking table.

Single-class labels are an **error**, not NaN with a warning: AUROC and AUPRC are undefined
there, and a NaN in a results table is easy to miss. Evaluate on a set with both classes,
or catch the ``ValueError`` where a subgroup may legitimately hold one class.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

BINARY_METRICS = (
    "auroc",
    "auprc",
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "specificity",
    "f1",
    "brier",
)
REGRESSION_METRICS = ("mse", "rmse", "mae", "r2")

MetricFn = Callable[[np.ndarray, np.ndarray], float]


def _as_1d(values: object, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_samples,), got shape {array.shape}")
    return array


def check_finite_pair(
    y_true: object, y_pred: object, pred_name: str = "y_pred"
) -> tuple[np.ndarray, np.ndarray]:
    """1-D float64 arrays of one length, non-empty, without NaN or inf; raises otherwise."""
    y, p = _as_1d(y_true, "y_true"), _as_1d(y_pred, pred_name)
    if len(y) != len(p):
        raise ValueError(f"y_true has {len(y)} samples but {pred_name} has {len(p)}")
    if len(y) == 0:
        raise ValueError("y_true is empty")
    for name, array in (("y_true", y), (pred_name, p)):
        bad = ~np.isfinite(array)
        if bad.any():
            raise ValueError(
                f"{name} has {int(bad.sum())} NaN or infinite values "
                f"(first at index {int(np.argmax(bad))}); drop or impute them first"
            )
    return y, p


def check_binary(y_true: object, y_prob: object) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(y_true as int64 0/1, y_prob as float64)``; raises naming the problem."""
    y, p = check_finite_pair(y_true, y_prob, "y_prob")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"y_true must hold 0/1 labels, got values {np.unique(y)[:5].tolist()}")
    if p.min() < 0.0 or p.max() > 1.0:
        raise ValueError(
            f"y_prob must be probabilities in [0, 1], got min {p.min():.4g} and max "
            f"{p.max():.4g}; apply a sigmoid to logits first"
        )
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(
            f"y_true holds only class {int(classes[0])} ({len(y)} samples): AUROC and AUPRC "
            "are undefined; evaluate on a set with both classes"
        )
    return y.astype(np.int64), p


def check_regression(y_true: object, y_pred: object) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 ``(y_true, y_pred)``; R² needs at least two samples."""
    y, p = check_finite_pair(y_true, y_pred, "y_pred")
    if len(y) < 2:
        raise ValueError(f"regression metrics need at least 2 samples, got {len(y)}")
    return y, p


def _check_threshold(threshold: float) -> float:
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    return float(threshold)


def _specificity(y: np.ndarray, pred: np.ndarray) -> float:
    tn, fp, _, _ = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return float(tn / (tn + fp))


def binary_metric_functions(threshold: float = 0.5) -> dict[str, MetricFn]:
    """One scikit-learn function per name in :data:`BINARY_METRICS`, on checked inputs.

    Thresholded metrics call a sample positive when ``y_prob >= threshold`` (the rule of
    :func:`sklearn.metrics.roc_curve`, and of :func:`select_threshold`). Precision is 0
    when nothing is called positive.
    """
    t = _check_threshold(threshold)

    def at(fn: Callable[..., float], **kw: object) -> MetricFn:
        return lambda y, p: float(fn(y, (p >= t).astype(np.int64), **kw))

    return {
        "auroc": lambda y, p: float(roc_auc_score(y, p)),
        "auprc": lambda y, p: float(average_precision_score(y, p)),
        "accuracy": at(accuracy_score),
        "balanced_accuracy": at(balanced_accuracy_score),
        "precision": at(precision_score, zero_division=0),
        "recall": at(recall_score, zero_division=0),
        "specificity": at(_specificity),
        "f1": at(f1_score, zero_division=0),
        "brier": lambda y, p: float(brier_score_loss(y, p)),
    }


def regression_metric_functions() -> dict[str, MetricFn]:
    """One scikit-learn function per name in :data:`REGRESSION_METRICS`."""
    return {
        "mse": lambda y, p: float(mean_squared_error(y, p)),
        "rmse": lambda y, p: float(np.sqrt(mean_squared_error(y, p))),
        "mae": lambda y, p: float(mean_absolute_error(y, p)),
        "r2": lambda y, p: float(r2_score(y, p)),
    }


def binary_metrics(y_true: object, y_prob: object, threshold: float = 0.5) -> dict[str, float]:
    """Discrimination, thresholded and calibration metrics of a binary classifier.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0/1 labels, both classes present.
    y_prob : array-like of shape (n_samples,)
        Predicted probability of class 1 (not logits).
    threshold : float, default=0.5
        ``y_prob >= threshold`` is called positive. Choose it on validation data with
        :func:`select_threshold`, never on the test set.

    Returns
    -------
    dict
        ``auroc``, ``auprc`` (average precision), ``accuracy``, ``balanced_accuracy``,
        ``precision``, ``recall`` (sensitivity), ``specificity``, ``f1``, ``brier``.

    Raises
    ------
    ValueError
        Mismatched lengths, NaN, labels other than 0/1, probabilities outside [0, 1], or a
        single class in ``y_true``.
    """
    y, p = check_binary(y_true, y_prob)
    return {name: fn(y, p) for name, fn in binary_metric_functions(threshold).items()}


def regression_metrics(y_true: object, y_pred: object) -> dict[str, float]:
    """``mse``, ``rmse``, ``mae`` and ``r2`` (coefficient of determination).

    Raises ``ValueError`` for mismatched lengths, NaN/inf or fewer than two samples.
    """
    y, p = check_regression(y_true, y_pred)
    return {name: fn(y, p) for name, fn in regression_metric_functions().items()}
