"""Validation scores watched during training, and what counts as an improvement.

These are computed with scikit-learn directly rather than through ``medseq.evaluation``:
imports point down the data path (evaluation comes after training), and the epoch loop
needs only a handful of scores, with missing labels (NaN) left out per label column.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def output_transform(task: str, output: torch.Tensor) -> torch.Tensor:
    """Logits to what ``predict`` returns: probabilities, or raw values for regression."""
    if task in ("binary", "multilabel"):
        return torch.sigmoid(output)
    if task == "multiclass":
        return torch.softmax(output, dim=-1)
    return output


def _per_column(y: np.ndarray, prob: np.ndarray, score) -> float:
    y2, p2 = y.reshape(len(y), -1), prob.reshape(len(prob), -1)
    values = []
    for k in range(y2.shape[1]):
        observed = ~np.isnan(y2[:, k])
        labels = y2[observed, k]
        if labels.size and 0 < labels.sum() < labels.size:
            values.append(score(labels, p2[observed, k]))
    return float(np.mean(values)) if values else math.nan


def validation_scores(task: str, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Scores for one validation pass, keyed as in ``TrainConfig.monitor``.

    Binary/multilabel: ``auroc`` and ``auprc``, macro-averaged over label columns that
    have both classes among their non-NaN labels (NaN if none has). Multiclass:
    ``accuracy``, ``macro_f1`` and ``balanced_accuracy`` (mean recall), over the classes
    present in the validation labels. Regression: ``mse`` and ``mae`` over non-NaN targets.
    scikit-learn is imported here, not at module import, so that ``medseq.training``
    (and ``medseq.training.distributed``, which the CLI's logging uses) loads in the
    serve-only install.
    """
    from sklearn.metrics import average_precision_score, f1_score, recall_score, roc_auc_score

    if task in ("binary", "multilabel"):
        return {
            "auroc": _per_column(y, pred, roc_auc_score),
            "auprc": _per_column(y, pred, average_precision_score),
        }
    if task == "multiclass":
        observed = ~np.isnan(y)
        truth, guess = y[observed].astype(np.int64), pred[observed].argmax(axis=-1)
        if not truth.size:
            return dict.fromkeys(("accuracy", "macro_f1", "balanced_accuracy"), math.nan)
        present = np.unique(truth)  # classes absent from validation are not averaged in
        return {
            "accuracy": float((guess == truth).mean()),
            "macro_f1": float(f1_score(truth, guess, labels=present, average="macro")),
            "balanced_accuracy": float(recall_score(truth, guess, labels=present, average="macro")),
        }
    pred = pred.reshape(y.shape)
    observed = ~np.isnan(y)
    err = pred[observed] - y[observed]
    return {"mse": float(np.mean(err**2)), "mae": float(np.mean(np.abs(err)))}


def check_monitorable(task: str, monitor: str, y: np.ndarray) -> None:
    """Raise before training when ``monitor`` cannot be computed on the validation labels."""
    if monitor not in ("auroc", "auprc"):
        return
    score = _per_column(y, np.zeros_like(y), lambda labels, _: 0.0)
    if math.isnan(score):
        raise ValueError(
            f"monitor={monitor!r} needs validation labels with both classes in at least one "
            "column; the validation set has one class only. Use monitor='loss' or a "
            "stratified split"
        )


def is_improvement(score: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """True when ``score`` beats ``best`` by more than ``min_delta`` in direction ``mode``.

    NaN never improves; the first finite score always does.
    """
    if math.isnan(score):
        return False
    if best is None or math.isnan(best):
        return True
    if mode == "max":
        return score > best + min_delta
    return score < best - min_delta
