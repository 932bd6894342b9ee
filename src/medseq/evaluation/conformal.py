"""Split conformal prediction from validation scores stored in the bundle.

At training time :func:`fit_conformal` turns the (out-of-fold) validation predictions
into sorted nonconformity scores, kept per class so that the class-conditional
(Mondrian) variant needs nothing else; the bundle stores them as JSON
(``bundle.conformal``). At prediction time :func:`prediction_sets` and
:func:`prediction_intervals` read the quantile for the requested coverage. The test set
is never used to calibrate.

Scores (Vovk et al. 2005; Angelopoulos & Bates 2021, "A gentle introduction to conformal
prediction"):

- classification (binary, multiclass, each label of a multilabel bundle):
  ``s = 1 - p(true class)``; the set holds every class ``k`` with ``1 - p_k <= q``;
- regression: ``s = |y - y_hat|``; the interval is ``y_hat +/- q``,

with ``q`` the ``ceil((n + 1) * coverage)``-th smallest of the ``n`` calibration scores
(infinite when that rank exceeds ``n``: the set is every class, the interval unbounded).
Mondrian takes ``q`` per true class from that class's scores only, so a rare class gets
its coverage too instead of borrowing it from the common one.

We write these few lines rather than use MAPIE (1.6) or crepes (0.9.1): MAPIE's
``SplitConformalClassifier(estimator, prefit=True).conformalize(X, y)`` wants a
scikit-learn estimator and the calibration rows themselves, and both libraries keep the
fitted calibrator as an in-memory Python object (pickled to persist), while a medseq
bundle is a hashed JSON manifest plus safetensors that loads without unpickling and
whose calibration rows are gone after training. crepes' ``ConformalClassifier.fit(alphas,
bins)`` does take plain scores (and Mondrian bins), but its sets use smoothed, randomised
p-values by default; the sorted scores and one quantile are all a stored-score bundle
needs, with no new dependency. See ``docs/uncertainty.md``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SCORE_DECIMALS = 6
CLASSIFICATION = ("binary", "multiclass", "multilabel")


def _sorted(values: np.ndarray) -> list[float]:
    # rounded up, so a stored score is never below the true one (coverage kept)
    scaled = np.ceil(np.sort(np.asarray(values, dtype=np.float64)) * 10**SCORE_DECIMALS)
    return [float(v) / 10**SCORE_DECIMALS for v in scaled]


def _class_scores(y: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """Per-class sorted ``1 - p(true)`` and the sorted top-class confidences, (N, K) probs."""
    y = np.asarray(y).astype(int)
    p_true = probs[np.arange(len(y)), y]
    by_class = {str(k): _sorted(1.0 - p_true[y == k]) for k in range(probs.shape[1])}
    return {"by_class": by_class, "confidence": _sorted(probs.max(axis=1))}


def as_class_probs(pred: np.ndarray, task: str) -> np.ndarray:
    """(N, K) class probabilities: a binary risk ``p`` becomes ``[1 - p, p]``."""
    pred = np.asarray(pred, dtype=np.float64)
    if task == "binary":
        return np.column_stack([1.0 - pred, pred])
    return pred


def fit_conformal(task: str, y: np.ndarray, pred: np.ndarray) -> dict[str, Any] | None:
    """Sorted nonconformity scores of validation predictions, JSON-ready for the bundle.

    Parameters
    ----------
    task : {"binary", "multiclass", "multilabel", "regression"}
    y : array of shape (N,) or (N, L)
        Validation labels (class indices, 0/1 per label, or targets).
    pred : array of shape (N,) or (N, K)
        The validation predictions of models that did not train on those rows.

    Returns
    -------
    dict or None
        ``{"task", "score", "n", ...}`` with per-class scores (``labels`` for multilabel,
        ``residuals`` for regression); None for per-step outputs, which have no single
        score per sample.
    """
    y, pred = np.asarray(y), np.asarray(pred, dtype=np.float64)
    one_per_sample = {"binary": (1, 1), "regression": (1, 1), "multiclass": (1, 2)}
    if (y.ndim, pred.ndim) != one_per_sample.get(task, (2, 2)):
        return None  # per-step outputs (sequence labelling): no single score per sample
    fitted: dict[str, Any] = {"task": task, "n": len(y), "method": "split conformal"}
    if task == "regression":
        return fitted | {"score": "|y - y_hat|", "residuals": _sorted(np.abs(y - pred))}
    fitted["score"] = "1 - p(true class)"
    if task == "multilabel":
        fitted["labels"] = [  # a missing label (NaN) gives no score for that label
            _class_scores(y[known, j], as_class_probs(pred[known, j], "binary"))
            for j in range(pred.shape[1])
            for known in [np.isfinite(y[:, j].astype(np.float64))]
        ]
        return fitted
    return fitted | _class_scores(y, as_class_probs(pred, task))


def conformal_quantile(scores: list[float] | np.ndarray, coverage: float) -> float:
    """The ``ceil((n + 1) * coverage)``-th smallest score; ``inf`` when that exceeds ``n``."""
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"conformal: coverage must be in (0, 1), got {coverage!r}")
    n = len(scores)
    rank = math.ceil((n + 1) * coverage)
    if n == 0 or rank > n:
        return math.inf
    return float(np.sort(np.asarray(scores))[rank - 1])


def _thresholds(fitted: dict[str, Any], coverage: float, mondrian: bool) -> np.ndarray:
    """(K,) score thresholds: one per class (Mondrian) or one shared."""
    by_class = fitted["by_class"]
    keys = sorted(by_class, key=int)
    if mondrian:
        return np.array([conformal_quantile(by_class[k], coverage) for k in keys])
    pooled = np.concatenate([np.asarray(by_class[k], dtype=np.float64) for k in keys])
    return np.full(len(keys), conformal_quantile(pooled, coverage))


def _require(calibration: dict[str, Any] | None, where: str) -> dict[str, Any]:
    if calibration is None:
        raise ValueError(
            f"{where}: this bundle stores no conformal scores (bundle.conformal is None); "
            "retrain it with this medseq version, or set bundle.conformal = "
            "fit_conformal(task, y_val, pred_val) from validation predictions and save it"
        )
    return calibration


def sets_from_probs(
    calibration: dict[str, Any], probs: np.ndarray, coverage: float, *, mondrian: bool = False
) -> np.ndarray:
    """Boolean prediction sets from probabilities and stored scores.

    Returns
    -------
    ndarray of bool, shape (N, K) for binary/multiclass, (N, L, 2) for multilabel
        ``True`` where a class is in the set (binary: columns ``[0, 1]``).
    """
    task = calibration["task"]
    probs = np.asarray(probs, dtype=np.float64)
    if task == "multilabel":
        parts = [
            sets_from_probs(label | {"task": "binary"}, probs[:, j], coverage, mondrian=mondrian)
            for j, label in enumerate(calibration["labels"])
        ]
        return np.stack(parts, axis=1)
    if task not in CLASSIFICATION:
        raise ValueError(f"conformal sets: classification bundles only, this one is {task!r}")
    class_probs = as_class_probs(probs, task)
    return 1.0 - class_probs <= _thresholds(calibration, coverage, mondrian)[None, :] + 1e-12


def prediction_sets(
    bundle: Any, probs: np.ndarray, coverage: float, *, mondrian: bool = False
) -> np.ndarray:
    """Conformal prediction sets of ``probs`` predicted by ``bundle`` (:func:`sets_from_probs`).

    The function the CLI and the service call: ``probs`` is what ``bundle.predict`` returned.
    """
    calibration = _require(getattr(bundle, "conformal", None), "prediction_sets")
    return sets_from_probs(calibration, probs, coverage, mondrian=mondrian)


def prediction_intervals(bundle: Any, pred: np.ndarray, coverage: float) -> np.ndarray:
    """(N, 2) conformalised-residual intervals ``pred +/- q`` of a regression bundle."""
    calibration = _require(getattr(bundle, "conformal", None), "prediction_intervals")
    return intervals_from_pred(calibration, pred, coverage)


def intervals_from_pred(calibration: dict[str, Any], pred: np.ndarray, coverage: float):
    """(N, 2) intervals ``pred +/- q`` from the stored residuals."""
    if calibration["task"] != "regression":
        raise ValueError(f"conformal intervals: regression only, got {calibration['task']!r}")
    half = conformal_quantile(calibration["residuals"], coverage)
    pred = np.asarray(pred, dtype=np.float64)
    return np.column_stack([pred - half, pred + half])


def _probs_from_frame(frame: Any, task: str, names: list[str]) -> np.ndarray:
    """The predictions back from a :func:`medseq.predictions.prediction_frame` table."""
    if task == "binary":
        return frame["risk"].to_numpy(dtype=np.float64)
    if task == "regression":
        return frame["prediction"].to_numpy(dtype=np.float64)
    return frame[[f"p_{name}" for name in names]].to_numpy(dtype=np.float64)


def _joined(sets: np.ndarray, names: list[str]) -> list[str]:
    return ["|".join(n for n, keep in zip(names, row, strict=True) if keep) for row in sets]


def conformal_columns(
    frame: Any, calibration: dict[str, Any] | None, task: str, coverage: float, *,
    class_names: list[str] | None = None, mondrian: bool = False,
) -> Any:  # fmt: skip
    """``frame`` (a prediction table) with the set or interval at ``coverage`` added.

    Binary and multiclass gain ``set`` (class names joined by ``|``; empty when no class
    reaches the coverage), ``set_size`` and, when the bundle carries an abstention rule,
    ``abstain``; multilabel ``set_<label>`` per label (``0``, ``1`` or ``0|1``); regression
    ``lower`` and ``upper``. Works from the table and the manifest's JSON alone, so the torch
    and the ONNX runtimes add the same columns.
    """
    calibration = _require(calibration, "--coverage")
    frame = frame.copy()
    if task == "regression":
        interval = intervals_from_pred(calibration, _probs_from_frame(frame, task, []), coverage)
        frame["lower"], frame["upper"] = interval[:, 0], interval[:, 1]
        return frame
    if task == "binary":
        names = ["0", "1"]
    else:
        n = len(calibration["labels"] if task == "multilabel" else calibration["by_class"])
        names = list(class_names) if class_names else [str(k) for k in range(n)]
    sets = sets_from_probs(
        calibration, _probs_from_frame(frame, task, names), coverage, mondrian=mondrian
    )
    if task == "multilabel":
        for j, name in enumerate(names):
            frame[f"set_{name}"] = _joined(sets[:, j], ["0", "1"])
        return frame
    frame["set"], frame["set_size"] = _joined(sets, names), sets.sum(axis=1)
    if calibration.get("abstention"):
        from medseq.evaluation.selective import abstain

        frame["abstain"] = abstain(calibration, _probs_from_frame(frame, task, names))
    return frame
