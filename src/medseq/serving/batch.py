"""Batch prediction of patient histories with the bundle's own transform and members.

The histories become the event and static tables of ``docs/architecture.md`` §1 and go
through ``Bundle.predict`` unchanged, so the REST answer is the number ``medseq predict``
gives for the same data. Events the featurizer would leave out for their time (before
admission, after the window) are reported per patient.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from medseq.bundle import Bundle
from medseq.serving.inputs import History

logger = logging.getLogger(__name__)


def _window_skips(history: History, window_hours: float) -> list[dict[str, Any]]:
    skipped = []
    for obs, origin in zip(history.observations, history.origins, strict=True):
        if obs.time < 0 or obs.time > window_hours:
            reason = "before_window" if obs.time < 0 else "after_window"
            skipped.append({"index": origin, "code": obs.code, "reason": reason})
    return skipped


def tables(histories: Sequence[History], static_columns: Sequence[str]):
    """(events, static, subject_ids) of the histories; subject ids are row positions."""
    rows = [(k, o.time, o.code, o.value) for k, h in enumerate(histories) for o in h.observations]
    events = pd.DataFrame(rows, columns=["subject_id", "time", "code", "value"])
    events = events.astype({"subject_id": "int64", "time": "float64", "value": "float64"})
    static = pd.DataFrame(
        [[h.static.get(c, math.nan) for c in static_columns] for h in histories],
        columns=list(static_columns),
        index=pd.Index(np.arange(len(histories), dtype=np.int64), name="subject_id"),
        dtype="float64",
    )
    return events, static, static.index.to_numpy()


def predict_histories(bundle: Bundle, histories: Sequence[History]) -> list[dict[str, Any]]:
    """One result per history: risk (or prediction), decision, events used, skipped."""
    featurizer = bundle.featurizer
    window = featurizer.n_steps * float(featurizer.step_hours)
    events, static, ids = tables(histories, featurizer.static_encoder_.columns)
    scores = bundle.predict_arrays(featurizer.transform(events, static, ids))
    results = []
    for k, history in enumerate(histories):
        late = _window_skips(history, window)
        skipped = sorted(history.skipped + late, key=lambda s: s["index"])
        score = float(scores[k])
        result: dict[str, Any] = {
            "patient_id": history.patient_id,
            "n_events_used": len(history.observations) - len(late),
            "skipped": skipped,
        }
        if bundle.task == "binary":
            result["risk"] = score
            result["decision"] = None if bundle.threshold is None else score >= bundle.threshold
        else:
            result["prediction"] = score
        results.append(result)
    return results
