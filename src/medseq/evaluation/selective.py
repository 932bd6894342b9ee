"""Selective prediction: abstain on the least certain cases, and what that buys.

A bundle's abstention rule lives in ``bundle.conformal["abstention"]`` and is one of

- ``{"rule": "non_singleton", "coverage": c, "mondrian": m}``: answer only where the
  conformal set at coverage ``c`` holds exactly one class (the model is sure enough that
  the other classes are excluded at that coverage);
- ``{"rule": "confidence", "answer_rate": r, "min_confidence": t}``: answer only where the
  top-class probability is at least ``t``, chosen on the stored validation confidences so
  that a share ``r`` of validation cases is answered.

Both are set from validation scores only. The risk-coverage curve (Geifman & El-Yaniv
2017, "Selective classification for deep neural networks") ranks cases by confidence and
reports the error (or another metric) on the answered share for every share answered.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medseq.evaluation.conformal import as_class_probs, sets_from_probs

DEFAULT_ABSTENTION = {"rule": "non_singleton", "coverage": 0.9, "mondrian": False}


def with_default_abstention(calibration: dict[str, Any] | None) -> dict[str, Any] | None:
    """The stored conformal scores plus the default rule (classification only)."""
    if calibration is None or calibration["task"] not in ("binary", "multiclass"):
        return calibration
    return calibration | {"abstention": dict(DEFAULT_ABSTENTION)}


def confidence_rule(calibration: dict[str, Any], answer_rate: float) -> dict[str, Any]:
    """A confidence threshold answering ``answer_rate`` of the validation cases."""
    if not 0.0 < answer_rate <= 1.0:
        raise ValueError(f"confidence_rule: answer_rate must be in (0, 1], got {answer_rate!r}")
    confidence = np.asarray(calibration["confidence"], dtype=np.float64)
    rank = int(np.floor((1.0 - answer_rate) * len(confidence)))
    threshold = float(np.sort(confidence)[min(rank, len(confidence) - 1)])
    return {"rule": "confidence", "answer_rate": answer_rate, "min_confidence": threshold}


def confidence(probs: np.ndarray, task: str) -> np.ndarray:
    """(N,) top-class probability: how sure the model is of its own answer."""
    return as_class_probs(probs, task).max(axis=1)


def abstain(calibration: dict[str, Any], probs: np.ndarray, rule: dict | None = None):
    """(N,) bool, True where the rule (default: the bundle's) says not to answer."""
    rule = rule or calibration.get("abstention")
    if rule is None:
        raise ValueError(
            "abstain: this bundle carries no abstention rule; pass one, e.g. "
            "confidence_rule(bundle.conformal, 0.8)"
        )
    if rule["rule"] == "non_singleton":
        sets = sets_from_probs(
            calibration, probs, rule["coverage"], mondrian=rule.get("mondrian", False)
        )
        return sets.sum(axis=1) != 1
    if rule["rule"] == "confidence":
        return confidence(probs, calibration["task"]) < rule["min_confidence"]
    raise ValueError(f"abstain: unknown rule {rule['rule']!r}; expected non_singleton/confidence")


def risk_coverage(
    y: np.ndarray, probs: np.ndarray, task: str, *, threshold: float | None = None,
    points: int = 20,
) -> list[dict[str, float]]:  # fmt: skip
    """Error on the answered cases when the least confident are set aside.

    Cases are ranked by the predicted probability of the class decided (at the bundle's
    threshold for binary bundles, so a risk just above a low threshold counts as unsure).

    Parameters
    ----------
    y, probs : labels (N,) and probabilities (N,) binary or (N, K) multiclass
    threshold : float, optional
        Binary decision threshold (the bundle's); 0.5 when None. Multiclass uses argmax.
    points : int
        Answer rates ``1/points, 2/points, ..., 1``.

    Returns
    -------
    list of dict
        ``{"answer_rate", "n", "error", "auroc"}``; AUROC only for binary, and NaN when
        the answered part holds one class.
    """
    from sklearn.metrics import roc_auc_score

    y, probs = np.asarray(y).astype(int), np.asarray(probs, dtype=np.float64)
    if task == "binary":  # confidence in the decision taken: p(the decided class)
        cut = 0.5 if threshold is None else threshold
        predicted = (probs >= cut).astype(int)
        conf = np.where(predicted == 1, probs, 1.0 - probs)
    else:
        predicted, conf = probs.argmax(axis=1), probs.max(axis=1)
    order = np.argsort(-conf, kind="stable")
    wrong = (predicted != y).astype(float)
    rows = []
    for k in range(1, points + 1):
        n = max(1, round(len(y) * k / points))
        kept = order[:n]
        row = {"answer_rate": n / len(y), "n": float(n), "error": float(wrong[kept].mean())}
        if task == "binary":
            both = len(np.unique(y[kept])) == 2
            row["auroc"] = float(roc_auc_score(y[kept], probs[kept])) if both else float("nan")
        rows.append(row)
    return rows
