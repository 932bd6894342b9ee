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

A per-step (sequence-labelling) model answers every step the parser names
(``Parsed.steps``: the ICU hours of a stay, the epochs of a night) in ``steps``, each with
the same fields; the item's own ``probabilities`` and ``predicted`` are those of its last
step (the current risk of a stay sent up to now).
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
    string RDKit cannot read) is a 422 naming the item it refused, at the item's field when
    the parser gave one (``parsed.locs``), else at the body; a module the install lacks is a
    503 naming the extra, never a 500.
    """
    try:
        return spec.transform(bundle.featurizer, parsed.data, parsed.ids)
    except ModuleNotFoundError as err:
        from medseq._imports import install_hint

        raise RequestUnavailable(f"this bundle's featurizer needs {install_hint(err)}") from None
    except ValueError as err:
        raise _refused_item(spec, bundle, parsed, err) from None


def _refused_item(spec: Any, bundle: Any, parsed: Parsed, err: ValueError) -> RequestError:
    """The 422 of a refused request, naming the first item the featurizer refuses alone
    (found on this error path only, one item at a time) and its field where known."""
    for k in range(len(parsed.ids)):
        try:
            spec.transform(bundle.featurizer, parsed.data, parsed.ids[k : k + 1])
        except ValueError as alone:
            loc = parsed.locs[k] if parsed.locs is not None else ("body",)
            message = f"the featurizer refused item {k} ({parsed.names[k]!r}): {alone}"
            return RequestError.at(loc, message)
    return RequestError.at(("body",), f"the featurizer refused the input: {err}")


def answer(bundle: Any, task_name: str, scores: np.ndarray, parsed: Parsed) -> dict[str, Any]:
    """The response body fields (but ``model_version``) for ``scores`` of ``parsed``.

    ``scores`` are ``(N,)`` or ``(N, K)``, one answer per item, or ``(N, T', K)`` for a
    per-step model, whose parser names the steps to answer (``parsed.steps``).
    """
    scores = np.asarray(scores, dtype=np.float64)
    per_step = parsed.steps is not None
    if per_step and scores.ndim != 3:
        raise ValueError(f"per-step answers need (N, T', K) scores, got {scores.shape}")
    if not per_step and scores.ndim == 3:
        raise ValueError("a per-step model's request parser must name its steps (Parsed.steps)")
    width = scores.shape[-1] if per_step else scores.reshape(len(parsed.ids), -1).shape[1]
    names = class_names(bundle, task_name, width)
    threshold = None if bundle.threshold is None else float(bundle.threshold)
    out = []
    for k, name in enumerate(parsed.names):
        item: dict[str, Any] = {"id": name, **parsed.notes[k]}
        if parsed.steps is not None:
            steps = _steps(bundle, scores[k], parsed.steps[k], names)
            last = steps[-1]
            item.update(probabilities=last["probabilities"], predicted=last["predicted"])
            item["steps"] = steps
        else:
            item.update(_one(bundle, scores.reshape(len(parsed.ids), -1)[k], names))
        out.append(item)
    return {"task": bundle.task, "class_names": names, "threshold": threshold, "predictions": out}


def _one(bundle: Any, row: np.ndarray, names: list[str]) -> dict[str, Any]:
    if bundle.task == "regression":
        return {"value": float(row[0]), "predicted": []}
    return {"probabilities": [float(p) for p in row], "predicted": _decide(bundle, row, names)}


def _steps(
    bundle: Any, rows: np.ndarray, labels: list[int], names: list[str]
) -> list[dict[str, Any]]:
    """One answer per named step, from the model's first output step on."""
    if not labels or len(labels) > len(rows):
        raise ValueError(f"{len(labels)} steps to answer from {len(rows)} output steps")
    return [{"step": int(label), **_one(bundle, row, names)}
            for label, row in zip(labels, rows, strict=False)]  # fmt: skip


def _decide(bundle: Any, row: np.ndarray, names: list[str]) -> list[str]:
    """Multiclass: the most probable class, or with two classes and a stored threshold
    (an alarm threshold chosen on validation data), the second class when its
    probability reaches it. Binary and multilabel: every name at or above the threshold."""
    if bundle.task == "multiclass":
        if bundle.threshold is not None and len(names) == 2:
            return [names[1] if row[1] >= float(bundle.threshold) else names[0]]
        return [names[int(np.argmax(row))]]
    cut = DEFAULT_THRESHOLD if bundle.threshold is None else float(bundle.threshold)
    return [name for name, p in zip(names, row, strict=True) if p >= cut]
