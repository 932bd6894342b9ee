"""Choose a decision threshold on validation data.

A threshold picked on the test set makes every thresholded test metric optimistic, so
medseq picks it on the validation split and applies it unchanged to the test set. All
candidates are observed probabilities, and a sample is positive when
``y_prob >= threshold``, the rule of :func:`sklearn.metrics.roc_curve` and of
:func:`medseq.evaluation.binary_metrics`.
"""

from __future__ import annotations

from typing import cast

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from medseq.evaluation.metrics import check_binary

METHODS = ("youden", "f1", "sensitivity", "specificity")


def _roc(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fpr, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
    finite = np.isfinite(thresholds)  # the first threshold is +inf (nothing positive)
    return fpr[finite], tpr[finite], thresholds[finite]


def _youden(y: np.ndarray, p: np.ndarray) -> float:
    fpr, tpr, thresholds = _roc(y, p)
    return float(thresholds[np.argmax(tpr - fpr)])


def _best_f1(y: np.ndarray, p: np.ndarray) -> float:
    precision, recall, thresholds = precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    return float(thresholds[np.argmax(f1)])


def _at_sensitivity(y: np.ndarray, p: np.ndarray, target: float) -> float:
    _, tpr, thresholds = _roc(y, p)
    return float(thresholds[np.argmax(tpr >= target)])  # tpr rises as thresholds fall


def _at_specificity(y: np.ndarray, p: np.ndarray, target: float) -> float:
    fpr, _, thresholds = _roc(y, p)
    ok = np.flatnonzero(1.0 - fpr >= target - 1e-12)
    # None meets it when a negative holds the highest score: fall back to that score.
    return float(thresholds[ok[-1]] if ok.size else thresholds[0])


def select_threshold(
    y_true: object, y_prob: object, method: str = "youden", target: float | None = None
) -> float:
    """Decision threshold chosen on validation labels and probabilities.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Validation 0/1 labels, both classes present.
    y_prob : array-like of shape (n_samples,)
        Validation probabilities of class 1.
    method : {"youden", "f1", "sensitivity", "specificity"}, default="youden"
        ``"youden"`` maximises sensitivity + specificity - 1 (Youden 1950; ties go to the
        highest threshold). ``"f1"`` maximises F1 (ties go to the lowest threshold).
        ``"sensitivity"`` is the highest threshold whose sensitivity is at least
        ``target`` (the most specific rule that still finds that share of positives, as
        in screening). ``"specificity"`` is the lowest threshold whose specificity is at
        least ``target`` (the most sensitive rule that keeps false alarms down), or the
        highest score when no threshold reaches it.
    target : float in (0, 1], optional
        Required by ``"sensitivity"`` and ``"specificity"``; not allowed otherwise.

    Returns
    -------
    float
        Call a sample positive when ``y_prob >= threshold``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    needs_target = method in ("sensitivity", "specificity")
    if needs_target and (target is None or not 0.0 < float(target) <= 1.0):
        raise ValueError(f"method={method!r} needs target in (0, 1], got {target!r}")
    if not needs_target and target is not None:
        raise ValueError(f"method={method!r} takes no target, got target={target!r}")
    y, p = check_binary(y_true, y_prob)
    if method == "youden":
        return _youden(y, p)
    if method == "f1":
        return _best_f1(y, p)
    if method == "sensitivity":
        return _at_sensitivity(y, p, float(cast(float, target)))  # not None: checked above
    return _at_specificity(y, p, float(cast(float, target)))
