"""A config task over REST: a FHIR R4 Bundle of a patient's resources, predicted at a time.

Imported on the first request (the ``fhir`` part of :mod:`medseq.datasets.event_tasks`).
The Bundle is read by the very reader training used (:func:`medseq.sources.fhir_r4.read`),
so its codes, times and units are those the model was fitted on, and its samples are
built by the functions training uses (:func:`medseq.tasks.cohort.sample_frame`,
:func:`medseq.tasks.inputs.input_events`): no training/serving skew.

The prediction time of each patient in the Bundle:

* ``Bundle.timestamp``, when the Bundle carries one: "predict as of this instant" (the
  usual case for a live request: the time the record was pulled);
* else the task's own rule on the Bundle's records: its fixed ``date``, or the anchor event
  plus ``offset_hours`` (``first`` or ``last`` anchor; for ``every``, the latest one).

Only events strictly before that time, and within the task's observation window, reach
the model. The answer notes the prediction time used, the events used and, as
``outside_cohort``, the cohort rules the patient does not meet at that time (the model was
not trained on such patients; the prediction is still given, flagged). A prediction time
later than the server's clock (plus its allowed skew), a patient with no event in the
window, or a Bundle the reader refuses is a 422 naming the field.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medseq.serving.requests import Parsed, RequestContext, RequestError
from medseq.tasks.spec import TaskSpec


def _patient_ids(body: dict[str, Any]) -> dict[int, str]:
    """subject_id (the reader's hash of ``Patient.id``) -> ``Patient.id``."""
    from medseq.sources.fhir_r4 import subject_id_of

    ids = {}
    for entry in body.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "Patient":
            pid = resource.get("id")
            if isinstance(pid, str) and pid:
                ids[subject_id_of(pid)] = pid
    return ids


def _read(body: dict[str, Any]) -> Any:
    """The Bundle through the training reader (written to a private temporary file)."""
    from medseq.schema import DataError
    from medseq.sources import fhir_r4

    with tempfile.TemporaryDirectory(prefix="medseq-request-") as tmp:
        path = Path(tmp) / "bundle.json"
        path.write_text(json.dumps(body), encoding="utf-8")
        try:
            return fhir_r4.read(path, on_bad_entry="raise")
        except DataError as err:
            message = str(err).replace(str(path), "the Bundle")
            raise RequestError.at(("body",), message) from None


def _timestamp(body: dict[str, Any], context: RequestContext) -> pd.Timestamp | None:
    raw = body.get("timestamp")
    if raw is None:
        return None
    try:
        stamp = pd.Timestamp(raw)
    except (ValueError, TypeError):
        raise RequestError.at(("body", "timestamp"), "must be a FHIR instant") from None
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    if stamp > pd.Timestamp(context.now + context.max_future):
        raise RequestError.at(
            ("body", "timestamp"), "is later than the server's clock: cannot predict the future"
        )
    return stamp


def _cutoffs(data: Any, spec: TaskSpec, stamp: pd.Timestamp | None) -> pd.Series:
    """Prediction time (hours on each subject's clock) per subject of the Bundle."""
    from medseq.tasks.cohort import prediction_times

    origin = pd.to_datetime(data.origin, utc=True)
    subjects = np.unique(data.events["subject_id"].to_numpy())
    if stamp is not None:
        hours = (stamp - origin.reindex(subjects)) / pd.Timedelta(hours=1)
        return pd.Series(hours.to_numpy(dtype=np.float64), index=subjects)
    if spec.prediction_time is None:
        raise RequestError.at(
            ("body", "timestamp"),
            "this task's prediction times come from a label file: give the Bundle a timestamp",
        )
    times = prediction_times(data.events, data.origin, spec.prediction_time)
    times = times.groupby(level=0).max()  # "every": the latest anchor
    missing = [s for s in subjects if s not in times.index]
    if missing:
        anchors = list(spec.prediction_time.anchor)
        raise RequestError.at(
            ("body", "entry"),
            f"no prediction time for a patient: none of the anchor codes {anchors} is in the "
            "Bundle; give the Bundle a timestamp to predict as of that instant",
        )
    return times.reindex(subjects)


def _outside(spec: TaskSpec, row: Any, death: float) -> list[str]:
    """The cohort rules a sample does not meet (checked at its prediction time)."""
    cohort, reasons = spec.cohort, []
    if np.isfinite(death) and death <= row.cutoff:
        reasons.append("died_before_prediction_time")
    if cohort.sex and row.sex not in cohort.sex:
        reasons.append("sex_not_in_cohort")
    if cohort.min_age_years > 0 or cohort.max_age_years < 200:
        if not np.isfinite(row.age_years):
            reasons.append("age_unknown")
        elif not cohort.min_age_years <= row.age_years <= cohort.max_age_years:
            reasons.append("age_outside_range")
    return reasons


def parse_fhir(body: Any, context: RequestContext) -> Parsed:
    """A FHIR R4 Bundle (one or more patients) -> the task's samples at the prediction time."""
    from medseq.datasets.event_tasks import EventTaskData
    from medseq.serving.fhir_bounds import MAX_FHIR_ENTRIES, check_bundle
    from medseq.tasks import inputs as task_inputs
    from medseq.tasks.cohort import sample_frame, statics_of
    from medseq.tasks.spec import CONFIG_TASKS

    check_bundle(body, MAX_FHIR_ENTRIES)
    spec = CONFIG_TASKS.definition(context.task)
    stamp = _timestamp(body, context)
    data = _read(body)
    names_of = _patient_ids(body)
    cutoff = _cutoffs(data, spec, stamp)
    window = spec.observation.window_hours
    table = pd.DataFrame(
        {
            "subject_id": cutoff.index.to_numpy(dtype=np.int64),
            "cutoff": cutoff.to_numpy(dtype=np.float64),
            "start": cutoff.to_numpy() - window if window > 0 else -np.inf,
        }
    )
    statics = statics_of(data.events)
    samples = sample_frame(statics, table)
    inputs = task_inputs.input_events(data.events, samples)
    used = inputs[~inputs["code"].str.startswith(("GENDER/", task_inputs.AGE_PREFIX))]
    counts = used.groupby("subject_id").size().reindex(samples.index, fill_value=0)
    if (counts == 0).any():
        raise RequestError.at(
            ("body", "entry"),
            f"a patient has no event in the task's observation window before the prediction "
            f"time (window_hours = {window:g}, 0: the whole past)",
        )
    history = task_inputs.as_history(inputs, samples, spec.observation.visit_hours)
    event_data = EventTaskData(
        events=data.events, origin=data.origin, report=data.report, task=context.task,
        samples=samples, history=history,
    )  # fmt: skip
    origin = pd.to_datetime(data.origin, utc=True)
    notes, names = [], []
    for row in samples.itertuples():
        when = origin.loc[row.subject_id] + pd.Timedelta(hours=float(row.cutoff))
        death = float(statics.loc[row.subject_id, "death"])
        note: dict[str, Any] = {
            "prediction_time": when.isoformat(),
            "n_events_used": int(counts.loc[row.Index]),
        }
        outside = _outside(spec, row, death)
        if outside:
            note["outside_cohort"] = outside
        notes.append(note)
        names.append(names_of.get(int(row.subject_id), str(row.subject_id)))
    return Parsed(event_data, samples.index.to_numpy(dtype=np.int64), names, notes)
