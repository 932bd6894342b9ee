"""PhysioNet 2012 stays over REST: request bodies, the LOINC code table, streaming.

The parts of the :data:`~medseq.datasets.physionet2012.PHYSIONET2012` spec that the service
uses (``request``, ``fhir``, ``streaming``), imported only when a request comes, so reading
the dataset for training never imports pydantic or FastAPI.

``POST /v1/predict`` bodies
    * event table: ``{"patients": [{"patient_id", "static": {Age, Gender, Height, ICUType,
      Weight}, "events": [{"time" (hours since ICU admission), "code" (variable name or
      LOINC), "value", "unit" (UCUM, optional)}]}]}``;
    * a FHIR R4 ``Bundle`` of ``Observation`` (LOINC codes, UCUM units), ``Patient`` and
      ``Encounter`` resources (:mod:`medseq.serving.fhir`).

Both become the reader's event and static tables and go through ``spec.transform``, so the
answer is the number ``medseq predict`` gives for the same stay. Events the featurizer leaves
out for their time (before admission, after the window) are reported per patient.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from medseq.serving.codes import CodeTable
from medseq.serving.inputs import History, InputError, history_from_events
from medseq.serving.requests import Parsed, RequestContext, validate
from medseq.serving.schemas import (
    IDEMPOTENCY_KEY_PATTERN,
    MAX_EVENTS,
    MAX_PATIENTS,
    MAX_UPDATE,
    EventIn,
    Number,
    PatientId,
    Strict,
)
from medseq.sources.physionet2012 import VALID_RANGES

TABLE_PACKAGE, TABLE_FILE = "medseq.datasets", "loinc_physionet2012.json"
#: Variables whose values are whole numbers (a score, a flag, a category).
INTEGER_VARIABLES = ("GCS", "MechVent", "Gender", "ICUType")


class StaticIn(Strict):
    """Descriptors of the stay, in the PhysioNet 2012 units; all optional."""

    Age: Number | None = Field(default=None, ge=0, le=130, description="years")
    Gender: Number | None = Field(default=None, ge=0, le=1, description="0 female, 1 male")
    Height: Number | None = Field(default=None, ge=50, le=280, description="cm")
    ICUType: Number | None = Field(default=None, ge=1, le=4, description="1..4")
    Weight: Number | None = Field(default=None, ge=1, le=700, description="kg, at admission")

    def given(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.model_dump().items() if v is not None}


class PatientHistoryIn(Strict):
    """One patient's history for batch prediction."""

    patient_id: PatientId
    static: StaticIn | None = None
    events: list[EventIn] = Field(default_factory=list, max_length=MAX_EVENTS)


class EventsRequest(Strict):
    """``POST /v1/predict`` in the event-table form (the other form is a FHIR Bundle)."""

    patients: list[PatientHistoryIn] = Field(min_length=1, max_length=MAX_PATIENTS)


class _EventsHead(Strict):
    """:class:`EventsRequest` with its patients not yet validated (see :func:`_validate_events`)."""

    patients: list[Any] = Field(min_length=1, max_length=MAX_PATIENTS)


class ObservationsIn(Strict):
    """``POST /v1/patients/{id}/observations`` in the event-table form."""

    observations: list[EventIn] = Field(default_factory=list, max_length=MAX_UPDATE)
    static: StaticIn | None = None
    update_id: str | None = Field(
        default=None, pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Idempotency key: an update is applied once per key (as the "
        "Idempotency-Key header).",
    )  # fmt: skip


@functools.cache
def code_table() -> CodeTable:
    """The LOINC/UCUM table of the PhysioNet 2012 variables, with the reader's limits."""
    return CodeTable.from_package(TABLE_PACKAGE, TABLE_FILE, VALID_RANGES, INTEGER_VARIABLES)


@dataclass(frozen=True)
class RequestStays:
    """The stays of a request as the reader's tables (what ``spec.transform`` reads)."""

    events: pd.DataFrame
    static: pd.DataFrame


def tables(histories: Sequence[History], static_columns: Sequence[str]) -> RequestStays:
    """Event and static tables of the histories; subject ids are their positions."""
    rows = [(k, o.time, o.code, o.value) for k, h in enumerate(histories) for o in h.observations]
    events = pd.DataFrame(rows, columns=["subject_id", "time", "code", "value"])
    events = events.astype({"subject_id": "int64", "time": "float64", "value": "float64"})
    static = pd.DataFrame(
        [[h.static.get(c, math.nan) for c in static_columns] for h in histories],
        columns=list(static_columns),
        index=pd.Index(np.arange(len(histories), dtype=np.int64), name="subject_id"),
        dtype="float64",
    )
    return RequestStays(events, static)


def _window_skips(history: History, window_hours: float) -> list[dict[str, Any]]:
    skipped = []
    for obs, origin in zip(history.observations, history.origins, strict=True):
        if obs.time < 0 or obs.time > window_hours:
            reason = "before_window" if obs.time < 0 else "after_window"
            skipped.append({"index": origin, "code": obs.code, "reason": reason})
    return skipped


def parsed_histories(histories: Sequence[History], featurizer: Any) -> Parsed:
    """Histories -> :class:`Parsed`, with per-patient ``n_events_used`` and ``skipped``."""
    window = featurizer.n_steps * float(featurizer.step_hours)
    notes = []
    for history in histories:
        late = _window_skips(history, window)
        notes.append(
            {
                "n_events_used": len(history.observations) - len(late),
                "skipped": sorted(history.skipped + late, key=lambda s: s["index"]),
            }
        )
    data = tables(histories, featurizer.static_encoder_.columns)
    ids = np.arange(len(histories), dtype=np.int64)
    return Parsed(data, ids, [h.patient_id for h in histories], notes)


def _validate_events(body: Any) -> EventsRequest:
    """``EventsRequest.model_validate(body)``, one patient at a time.

    pydantic holds the GIL for a whole ``model_validate`` call: for an 8 MB body that was
    seconds during which the event loop (``/healthz``, other patients) could not run, even
    with the work in a worker thread. Patient by patient, the loop gets its turn between
    two patients. Errors are those of the one-call validation, with the same ``loc``.
    """
    head = validate(_EventsHead, body)
    patients, errors, n_errors = [], [], 0
    for i, item in enumerate(head.patients):
        try:
            patients.append(validate(PatientHistoryIn, item, ("body", "patients", i)))
        except InputError as err:
            errors += err.first()
            n_errors += err.n_errors
    if errors:
        raise InputError(errors, n_errors)
    return EventsRequest.model_construct(patients=patients)


def parse_events(body: Any, context: RequestContext) -> Parsed:
    """The event-table body (see the module doc)."""
    request = _validate_events(body)
    table = code_table()
    histories = [
        history_from_events(
            p.patient_id,
            p.events,
            p.static.given() if p.static else {},
            table,
            loc=("body", "patients", k, "events"),
        )
        for k, p in enumerate(request.patients)
    ]
    ids = [h.patient_id for h in histories]
    if len(set(ids)) != len(ids):
        raise InputError.at(("body", "patients"), "patient_id values must be distinct")
    return parsed_histories(histories, context.featurizer)


def parse_fhir(body: Any, context: RequestContext) -> Parsed:
    """A FHIR R4 Bundle of Observations (and Patient, Encounter) of one or more patients."""
    from medseq.serving.fhir import histories_from_bundle

    parsed = histories_from_bundle(
        body, code_table(), now=context.now, max_future=context.max_future
    )
    histories = list(parsed.values())
    if not histories:
        raise InputError.at(("body", "entry"), "the Bundle holds no Observation")
    if len(histories) > MAX_PATIENTS:
        raise InputError.at(("body", "entry"), f"more than {MAX_PATIENTS} patients")
    return parsed_histories(histories, context.featurizer)


# -- streaming ---------------------------------------------------------------------------


def stream_features(featurizer: Any) -> Any:
    """The incremental form of the bundled ICU grid featurizer, one stay and one bin at a
    time (:class:`~medseq.features.icu.incremental.StreamFeaturizer`): what the streaming
    engine advances stays with, so the service itself names no featurizer."""
    from medseq.features.icu.incremental import StreamFeaturizer

    return StreamFeaturizer(featurizer)


def open_service(bundle: Any, version: str, store: Any, alert: Any, **options: Any) -> Any:
    """The streaming service of an ICU-grid bundle (a
    :class:`~medseq.serving.service.StreamService`; ``options`` such as
    ``max_cached_patients`` are passed on)."""
    from medseq.serving.service import StreamService

    return StreamService(bundle, version, store, alert, **options)


def observations(
    obj: Any, patient_id: str, admission: str | None, context: RequestContext
) -> tuple[History, tuple[str, ...]]:
    """A streaming update body (event rows or a FHIR Bundle) as a history, and the path
    prefix of its observations (for errors naming the observation at fault)."""
    from medseq.serving.fhir import histories_from_bundle, is_fhir_bundle

    if is_fhir_bundle(obj):
        start = datetime.fromisoformat(admission) if admission is not None else None
        parsed = histories_from_bundle(
            obj, code_table(), now=context.now, max_future=context.max_future,
            patient_id=patient_id, admission=start,
        )  # fmt: skip
        return parsed[patient_id], ("body", "entry")
    body = validate(ObservationsIn, obj)
    static = body.static.given() if body.static else {}
    history = history_from_events(patient_id, body.observations, static, code_table())
    history.update_id = body.update_id
    return history, ("body", "observations")


def describe(featurizer: Any) -> dict[str, Any]:
    """Inputs of the model card: the grid's variables, descriptors and code table."""
    return {
        "variables": list(featurizer.feature_names_),
        "static_columns": list(featurizer.static_encoder_.columns),
        "codes": code_table().describe(),
        "refused_codes": dict(code_table().refused),
    }
