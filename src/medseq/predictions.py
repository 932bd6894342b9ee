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
) -> pd.DataFrame:
    """One row per id: ``risk`` and ``decision`` (binary), ``prediction`` (regression),
    ``p_<class>`` per class or label (multiclass, multilabel; plus the argmax class name
    as ``prediction`` for multiclass).

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
    """
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
            frame["prediction"] = [names[k] for k in pred.argmax(axis=1)]
    return frame


def ids_to_predict(spec: Any, data: Any, task: str) -> np.ndarray:
    """Every subject the reader returned (its subject table), labelled or not; the
    labelled ids for datasets whose reader has no subject table."""
    static = getattr(data, "static", None)
    if isinstance(static, pd.DataFrame):
        return static.index.to_numpy()
    return spec.labels(task, data).index.to_numpy()
