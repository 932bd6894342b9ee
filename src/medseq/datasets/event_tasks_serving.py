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
from dataclasses import dataclass
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


def _read(body: dict[str, Any], context: RequestContext) -> Any:
    """The Bundle through the training reader (written to a private temporary file), with
    the units training chose per code (kept in the bundle; a bundle trained before they
    were kept falls back to the Bundle's own most frequent unit)."""
    from medseq.schema import DataError
    from medseq.sources import fhir_r4

    units = dict(context.request_state.get("units") or {}) or None
    with tempfile.TemporaryDirectory(prefix="medseq-request-") as tmp:
        path = Path(tmp) / "bundle.json"
        path.write_text(json.dumps(body), encoding="utf-8")
        try:
            return fhir_r4.read(path, on_bad_entry="raise", units=units)
        except DataError as err:
            message = str(err).replace(str(path), "the Bundle")
            raise RequestError.at(("body",), message) from None


def _timestamp(body: dict[str, Any], context: RequestContext) -> pd.Timestamp | None:
    return instant(body.get("timestamp"), ("body", "timestamp"), context)


def instant(raw: Any, loc: tuple[str, ...], context: RequestContext) -> pd.Timestamp | None:
    """The ISO 8601 instant ``raw`` of the body field ``loc`` in UTC (None when absent; a
    time without a zone is UTC); a 422 when it does not parse or lies in the future."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise RequestError.at(loc, "must be an ISO 8601 date-time string")
    try:
        stamp = pd.Timestamp(raw)
    except (ValueError, TypeError):
        raise RequestError.at(loc, "must be an ISO 8601 date-time (a FHIR instant)") from None
    if stamp is pd.NaT:
        raise RequestError.at(loc, "must be an ISO 8601 date-time (a FHIR instant)")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    if stamp > pd.Timestamp(context.now + context.max_future):
        raise RequestError.at(loc, "is later than the server's clock: cannot predict the future")
    return stamp


def _cutoffs(data: Any, spec: TaskSpec, when: When) -> pd.Series:
    """Prediction time (hours on each subject's clock) per subject of the request."""
    from medseq.tasks.cohort import prediction_times

    subjects = np.unique(data.events["subject_id"].to_numpy())
    if when.hour is not None:
        return pd.Series(float(when.hour), index=subjects)
    if when.stamp is not None:
        origin = pd.to_datetime(data.origin, utc=True)
        hours = (when.stamp - origin.reindex(subjects)) / pd.Timedelta(hours=1)
        return pd.Series(hours.to_numpy(dtype=np.float64), index=subjects)
    if spec.prediction_time is None:
        raise RequestError.at(
            when.loc,
            f"this task's prediction times come from a label file: give {when.loc[-1]}",
        )
    times = prediction_times(data.events, data.origin, spec.prediction_time)
    times = times.groupby(level=0).max()  # "every": the latest anchor
    missing = [s for s in subjects if s not in times.index]
    if missing:
        anchors = list(spec.prediction_time.anchor)
        raise RequestError.at(
            when.rows_loc,
            f"no prediction time for a patient: none of the anchor codes {anchors} is in the "
            f"request; give {when.loc[-1]} to predict as of that instant",
        )
    return times.reindex(subjects)


def _outside(spec: TaskSpec, row: Any, death: float, events: pd.DataFrame) -> list[str]:
    """The cohort rules a sample does not meet (checked at its prediction time);
    ``events`` are its subject's events (the cohort's code rules look before the time)."""
    from medseq.tasks.spec import match_codes

    cohort, reasons = spec.cohort, []
    before = events.loc[events["time"].to_numpy() < row.cutoff, "code"].astype(str)
    if cohort.require_codes and not match_codes(before, cohort.require_codes).any():
        reasons.append("required_code_absent")
    if cohort.exclude_codes and match_codes(before, cohort.exclude_codes).any():
        reasons.append("excluded_code_present")
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
    from medseq.serving.fhir_bounds import MAX_FHIR_ENTRIES, check_bundle

    check_bundle(body, MAX_FHIR_ENTRIES)
    stamp = _timestamp(body, context)
    data = _read(body, context)
    when = When(stamp=stamp, loc=("body", "timestamp"), rows_loc=("body", "entry"))
    return samples_at(data, context, when, _patient_ids(body))


@dataclass(frozen=True)
class When:
    """When a request asks to predict, and where in the body that is said.

    ``stamp`` (an instant, on data with date-times) or ``hour`` (hours on each subject's
    own clock, for exports with relative times only) overrides the task's rule; with
    neither, the task's own prediction time applies. ``loc`` is the body field that gives
    the time, ``rows_loc`` the field that holds the records (named in errors).
    """

    loc: tuple[str, ...]
    rows_loc: tuple[str, ...]
    stamp: pd.Timestamp | None = None
    hour: float | None = None


def samples_at(
    data: Any, context: RequestContext, when: When, names_of: dict[int, str] | None = None
) -> Parsed:
    """The request's records (``events``, ``origin``, ``report`` as a reader gives them) as
    the task's samples at the prediction time, through the functions training uses.

    Shared by every body form of a config task (FHIR Bundle, MEDS rows, flat-table rows):
    each reads its body into the event table as its training reader does, then comes here.
    ``names_of`` maps subject ids to the request's names (default: the id as text).
    """
    from medseq.datasets.event_tasks import EventTaskData
    from medseq.tasks import inputs as task_inputs
    from medseq.tasks.cohort import sample_frame, statics_of
    from medseq.tasks.spec import CONFIG_TASKS

    spec = CONFIG_TASKS.definition(context.task)
    cutoff = _cutoffs(data, spec, when)
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
            when.rows_loc,
            f"a patient has no event in the task's observation window before the prediction "
            f"time (window_hours = {window:g}, 0: the whole past)",
        )
    history = task_inputs.as_history(inputs, samples, spec.observation.visit_hours)
    event_data = EventTaskData(
        events=data.events, origin=data.origin, report=data.report, task=context.task,
        samples=samples, history=history,
    )  # fmt: skip
    notes = [
        _note(data, spec, row, statics, counts.loc[row.Index], used, context.featurizer)
        for row in samples.itertuples()
    ]
    names = [(names_of or {}).get(int(s), str(s)) for s in samples["subject_id"]]
    return Parsed(event_data, samples.index.to_numpy(dtype=np.int64), names, notes)


def _note(
    data: Any, spec: TaskSpec, row: Any, statics: pd.DataFrame, n_used: int,
    used: pd.DataFrame, featurizer: Any,
) -> dict[str, Any]:  # fmt: skip
    """What the answer says of one sample: when, how many events, what the model ignored."""
    note: dict[str, Any] = {"prediction_hour": float(row.cutoff)}
    if row.subject_id in data.origin.index:  # date-times: the instant too
        origin = pd.to_datetime(data.origin, utc=True).loc[row.subject_id]
        # to the microsecond, as MEDS keeps times: hours as a float are not exact, and
        # 2019-01-01 read back as 2018-12-31T23:59:59.999999968
        when = origin + pd.Timedelta(hours=float(row.cutoff))
        note["prediction_time"] = when.round("us").isoformat()
    note["n_events_used"] = int(n_used)
    codes = used.loc[used["subject_id"] == row.Index, "code"]
    unknown = codes[~known_codes(featurizer, codes)]
    note["unknown_codes"] = {
        "n_events": len(unknown),
        "codes": unknown.value_counts().index[:MAX_UNKNOWN_LISTED].tolist(),
    }
    mine = data.events[data.events["subject_id"].to_numpy() == row.subject_id]
    outside = _outside(spec, row, float(statics.loc[row.subject_id, "death"]), mine)
    if outside:
        note["outside_cohort"] = outside
    return note


#: Distinct unknown codes listed per answer (most frequent first); all are counted.
MAX_UNKNOWN_LISTED = 20


def known_codes(featurizer: Any, codes: pd.Series) -> np.ndarray:
    """Whether each code reaches a column of the model's input: a code of the visit
    vocabulary (after the featurizer's own filter and grouping), or a variable of the
    time grid. Everything else lands nowhere, or in the unknown bucket."""
    from medseq.features.histories.visits import VisitFeaturizer

    text = codes.astype(str)
    if isinstance(featurizer, VisitFeaturizer):
        from medseq.sources.icd9 import group

        vocabulary = set(featurizer.code_names[1:])  # [0] is the unknown bucket
        chosen = text.str.startswith(featurizer.code_prefixes).to_numpy()
        grouped = [group(c, featurizer.level) in vocabulary for c in text]
        return chosen & np.asarray(grouped, dtype=bool)
    return text.isin(set(featurizer.feature_names_)).to_numpy()
