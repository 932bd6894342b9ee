"""One prediction table for every runtime: ``medseq predict`` with torch or with ONNX Runtime.

Both runtimes call :func:`prediction_frame`, so the CSV they write has the same columns for
the same bundle whatever ran the model. numpy and pandas only: the ONNX path imports it
without torch or the training stack.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def prediction_frame(
    ids: np.ndarray,
    pred: np.ndarray,
    task: str,
    threshold: float | None = None,
    class_names: list[str] | None = None,
    lengths: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per id: ``risk`` and ``decision`` (binary), ``prediction`` (regression),
    ``p_<class>`` per class or label (multiclass, multilabel; plus the argmax class name
    as ``prediction`` for multiclass, or with two classes and a threshold, the second class
    when its probability reaches the threshold). A per-step model's ``(N, T', K)``
    predictions give one row per id and step (a ``step`` column, from 0), up to each id's
    length.

    Parameters
    ----------
    ids : array of shape (N,)
        Subject or sample ids, in the order of ``pred``.
    pred : array of shape (N,) or (N, K)
        Averaged member probabilities (or outputs for regression).
    task : {"binary", "multiclass", "multilabel", "regression"}
    threshold : float, optional
        The bundle's decision threshold (binary); no ``decision`` column without one.
    class_names : list of str, optional
        Class or label names; ``"0" .. "K-1"`` when absent.
    lengths : array of shape (N,), optional
        Steps per id of per-step predictions (:func:`output_lengths`); all ``T'`` if absent.
    """
    if np.ndim(pred) == 3:
        return _per_step_frame(ids, pred, task, threshold, class_names, lengths)
    frame = pd.DataFrame({"subject_id": ids})
    if task == "binary":
        frame["risk"] = pred
        if threshold is not None:
            frame["decision"] = (pred >= threshold).astype(int)
    elif task == "regression":
        frame["prediction"] = pred
    elif pred.ndim == 2:
        names = list(class_names) if class_names else [str(k) for k in range(pred.shape[1])]
        for k, name in enumerate(names):
            frame[f"p_{name}"] = pred[:, k]
        if task == "multiclass":
            chosen = pred.argmax(axis=1)
            if threshold is not None and len(names) == 2:
                chosen = (pred[:, 1] >= threshold).astype(int)
            frame["prediction"] = [names[k] for k in chosen]
    return frame


def with_sample_keys(frame: pd.DataFrame, keys: pd.DataFrame | None) -> pd.DataFrame:
    """``frame`` (one row per sample, ``subject_id`` holding sample ids) with the sample's
    patient as ``subject_id`` and its other key columns (the prediction time) after it;
    unchanged without ``keys`` (a dataset whose sample id is the subject id)."""
    if keys is None:
        return frame
    if len(keys) != len(frame):
        raise ValueError(f"sample keys give {len(keys)} rows for {len(frame)} predictions")
    rest = frame.drop(columns="subject_id").reset_index(drop=True)
    return pd.concat([keys.reset_index(drop=True), rest], axis=1)


def sample_keys(spec: Any, task: str, data: Any, ids: np.ndarray) -> pd.DataFrame | None:
    """The spec's ``sample_keys`` of ``ids`` (patient, prediction time), or None."""
    keys = getattr(spec, "sample_keys", None)
    return None if keys is None else keys(task, data, np.asarray(ids))


def _per_step_frame(
    ids: np.ndarray,
    pred: np.ndarray,
    task: str,
    threshold: float | None,
    class_names: list[str] | None,
    lengths: np.ndarray | None,
) -> pd.DataFrame:
    """The 2-D table of every (id, step) row up to each id's length."""
    steps = pred.shape[1]
    counts = np.full(len(ids), steps) if lengths is None else np.minimum(lengths, steps)
    keep = np.arange(steps)[None, :] < counts[:, None]  # (N, T') row-major: id, then step
    frame = prediction_frame(np.repeat(ids, counts), pred[keep], task, threshold, class_names)
    frame.insert(1, "step", np.nonzero(keep)[1])
    return frame


def output_lengths(features: dict[str, np.ndarray], pred: np.ndarray) -> np.ndarray | None:
    """Steps per sample of per-step predictions: the inputs' ``lengths`` when the model
    keeps the input's steps (``T' == T``); None otherwise (every output step is kept)."""
    lengths, values = features.get("lengths"), features.get("values")
    if np.ndim(pred) != 3 or lengths is None or values is None:
        return None
    return np.asarray(lengths) if values.shape[1] == pred.shape[1] else None


def ids_to_predict(spec: Any, data: Any, task: str) -> np.ndarray:
    """Every subject the reader returned (its subject table), labelled or not; the
    labelled ids for datasets whose reader has no subject table."""
    static = getattr(data, "static", None)
    if isinstance(static, pd.DataFrame):
        return static.index.to_numpy()
    return spec.labels(task, data).index.to_numpy()
