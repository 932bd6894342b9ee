"""``POST /v1/predict`` for any bundle: the dataset parses, its transform featurises, the
bundle predicts, and the answer takes one shape whatever the dataset and task.

Nothing here knows a modality: the body goes to the dataset spec's ``request`` part (or its
``fhir`` part for a FHIR ``Bundle``, :mod:`medseq.serving.requests`), then through
``spec.transform(bundle.featurizer, data, ids)`` and ``bundle.predict_arrays``, the calls
``medseq predict`` makes for a file, so the REST answer is the number a file gives.

Answer per item: ``probabilities`` (one per class name; binary: the positive class only),
``value`` (regression), ``predicted`` (the class names decided: binary and multilabel at
the threshold, multiclass the most probable class) and whatever the parser noted (events
used, inputs skipped and why).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medseq.serving.requests import Parsed, RequestError, RequestUnavailable

#: Multilabel probabilities are decided at 0.5 when the bundle stores no threshold.
DEFAULT_THRESHOLD = 0.5


def class_names(bundle: Any, task_name: str, n_outputs: int) -> list[str]:
    """Names of the outputs: the bundle's class names, else the task's name (binary,
    regression), else ``class_0..``."""
    if bundle.class_names and len(bundle.class_names) == n_outputs:
        return [str(c) for c in bundle.class_names]
    if n_outputs == 1:
        return [task_name or "positive"]
    return [f"class_{k}" for k in range(n_outputs)]


def featurise(spec: Any, bundle: Any, parsed: Parsed) -> dict[str, np.ndarray]:
    """The model inputs of a parsed request, through the dataset's own transform.

    A featurizer that refuses the input (a recording too short to hold a beat, a SMILES
    string RDKit cannot read) is a 422 naming the body; a module the install lacks is a 503
    naming the extra, never a 500.
    """
    try:
        return spec.transform(bundle.featurizer, parsed.data, parsed.ids)
    except ModuleNotFoundError as err:
        from medseq._imports import install_hint

        raise RequestUnavailable(f"this bundle's featurizer needs {install_hint(err)}") from None
    except ValueError as err:
        raise RequestError.at(("body",), f"the featurizer refused the input: {err}") from None


def answer(bundle: Any, task_name: str, scores: np.ndarray, parsed: Parsed) -> dict[str, Any]:
    """The response body fields (but ``model_version``) for ``scores`` of ``parsed``."""
    scores = np.asarray(scores, dtype=np.float64)
    matrix = scores.reshape(len(parsed.ids), -1)
    names = class_names(bundle, task_name, matrix.shape[1])
    threshold = None if bundle.threshold is None else float(bundle.threshold)
    out = []
    for k, name in enumerate(parsed.names):
        row = matrix[k]
        item: dict[str, Any] = {"id": name, **parsed.notes[k]}
        if bundle.task == "regression":
            item.update(value=float(row[0]), predicted=[])
        else:
            item.update(
                probabilities=[float(p) for p in row], predicted=_decide(bundle, row, names)
            )
        out.append(item)
    return {"task": bundle.task, "class_names": names, "threshold": threshold, "predictions": out}


def _decide(bundle: Any, row: np.ndarray, names: list[str]) -> list[str]:
    if bundle.task == "multiclass":
        return [names[int(np.argmax(row))]]
    cut = DEFAULT_THRESHOLD if bundle.threshold is None else float(bundle.threshold)
    return [name for name, p in zip(names, row, strict=True) if p >= cut]
