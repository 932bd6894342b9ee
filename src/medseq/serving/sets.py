"""Conformal prediction sets (intervals) in the ``POST /v1/predict`` answer.

``POST /v1/predict?coverage=0.9`` (optionally ``&mondrian=true`` for class-conditional
sets) adds to each item a ``conformal`` object computed from the calibration scores the
bundle stores (``bundle.conformal``, fitted on validation predictions at training time),
with the functions ``medseq predict --coverage`` uses (:mod:`medseq.evaluation.conformal`,
numpy only), so the REST answer and the CLI's CSV hold the same sets:

- binary and multiclass: ``set`` (class labels; binary ``"0"``/``"1"`` as in the CSV),
  ``set_size`` and, where the bundle carries an abstention rule, ``abstain``;
- multilabel: ``sets``, per label its set of ``"0"``/``"1"``;
- regression: ``interval`` ``[lower, upper]`` (null for an unbounded side: the coverage
  asked exceeds what the calibration scores can give).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from medseq.serving.requests import RequestError

LOC = ("query", "coverage")


def requested(request: Any) -> tuple[float | None, bool]:
    """``(coverage, mondrian)`` from the query string; 422 naming the parameter when bad."""
    raw = request.query_params.get("coverage")
    mondrian_raw = request.query_params.get("mondrian", "false").lower()
    if mondrian_raw not in ("true", "false", "1", "0"):
        raise RequestError.at(("query", "mondrian"), "expected true or false")
    mondrian = mondrian_raw in ("true", "1")
    if raw is None:
        if mondrian:
            raise RequestError.at(LOC, "mondrian=true needs a coverage, e.g. ?coverage=0.9")
        return None, False
    try:
        coverage = float(raw)
    except ValueError:
        coverage = math.nan
    if not 0.0 < coverage < 1.0:
        raise RequestError.at(LOC, "coverage must be a number in (0, 1), e.g. 0.9")
    return coverage, mondrian


def add_sets(
    out: dict[str, Any], bundle: Any, scores: np.ndarray, coverage: float, mondrian: bool
) -> None:
    """Add ``conformal`` to each prediction of ``out`` (an :func:`~.predict.answer` body)."""
    from medseq.evaluation import conformal

    calibration = bundle.conformal
    if calibration is None:
        raise RequestError.at(
            LOC,
            "this bundle carries no conformal calibration (trained before medseq stored "
            "one, or its outputs are per step); retrain it to ask a coverage",
            "unsupported",
        )
    scores = np.asarray(scores, dtype=np.float64)
    items = out["predictions"]
    base = {"coverage": coverage, "mondrian": mondrian}
    if bundle.task == "regression":
        bounds = conformal.intervals_from_pred(calibration, scores.reshape(-1), coverage)
        for item, (lo, hi) in zip(items, bounds, strict=True):
            item["conformal"] = {**base, "interval": [_finite(lo), _finite(hi)]}
        return
    sets = conformal.sets_from_probs(calibration, scores, coverage, mondrian=mondrian)
    if bundle.task == "multilabel":
        names = out["class_names"]
        for item, row in zip(items, sets, strict=True):
            per_label = {name: _members(row[j], ["0", "1"]) for j, name in enumerate(names)}
            item["conformal"] = {**base, "sets": per_label}
        return
    names = ["0", "1"] if bundle.task == "binary" else out["class_names"]
    held = None
    if calibration.get("abstention"):
        from medseq.evaluation.selective import abstain

        held = abstain(calibration, scores)
    for k, (item, row) in enumerate(zip(items, sets, strict=True)):
        members = _members(row, names)
        item["conformal"] = {**base, "set": members, "set_size": len(members)}
        if held is not None:
            item["conformal"]["abstain"] = bool(held[k])


def _members(row: np.ndarray, names: list[str]) -> list[str]:
    return [name for name, keep in zip(names, row, strict=True) if keep]


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
