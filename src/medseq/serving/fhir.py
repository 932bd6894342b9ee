"""HL7 FHIR R4 ``Bundle`` of ``Observation`` resources -> patient histories.

Parsing and validation use ``fhir.resources`` (:func:`medseq.serving.requests.fhir_bundle`).
A Bundle that is not valid FHIR is a 422 whose ``loc`` is the path in the Bundle
(``body.entry.3.resource.valueQuantity.value``). Which codes name which variable is the
dataset's code table (:class:`~medseq.serving.codes.CodeTable`, from its spec).

What is read
    ``Observation``: ``subject`` (``Patient/<id>``), ``effectiveDateTime`` (or
    ``effectivePeriod.start``; a full date-time with a time zone), ``code.coding`` (LOINC
    or the code table's local system, e.g. ``urn:medseq:physionet2012``),
    ``valueQuantity`` (UCUM ``code``, else ``unit``), ``valueInteger`` or
    ``valueBoolean``, and ``component`` (e.g. the systolic and diastolic parts of a
    blood-pressure panel). Only the statuses ``final``, ``amended``, ``corrected`` and
    ``preliminary`` are used; others are reported (``status:<status>``).
    ``Patient``: ``gender`` (male 1, female 0) and ``birthDate`` (Age in whole years at
    admission). ``Encounter``: ``period.start`` is the admission time.

Admission time (hour 0 of the model's window)
    The patient's ``Encounter.period.start`` when the Bundle has one, else (streaming) the
    admission time stored with the patient, else the earliest observation time of the
    patient in the Bundle. As in the PhysioNet files, the first body weight at hour 0 is
    the admission-weight descriptor; every other one is a time-varying ``Weight``.

``valueQuantity.comparator`` (a censored value such as ``< 0.01``) is left out and reported
with reason ``censored``. A streaming update Bundle holds at most ``MAX_UPDATE`` entries,
the cap of the event-table form (:mod:`medseq.serving.fhir_bounds`).

Refused with 422: invalid FHIR, a Bundle outside :mod:`medseq.serving.fhir_bounds` (type,
entry count, resource types, dates given as numbers), an Observation without subject
(batch) or with another subject than the URL's (streaming), without an effective time,
with a date but no time, or later than ``now + max_future``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from medseq.serving.codes import UCUM_SYSTEM, CodeTable, Mapped
from medseq.serving.engine import Observation
from medseq.serving.inputs import History, InputError
from medseq.serving.requests import fhir_bundle, fhir_subject, is_fhir_bundle
from medseq.serving.schemas import MAX_UPDATE

ACCEPTED_STATUS = frozenset({"final", "amended", "corrected", "preliminary"})
GENDER = {"male": 1.0, "female": 0.0}


@dataclass
class _Obs:
    index: int
    subject: str | None
    when: datetime
    resource: Any


def _effective(resource: Any, index: int, now: datetime, max_future: timedelta) -> datetime:
    loc = ("body", "entry", index, "resource", "effectiveDateTime")
    when = resource.effectiveDateTime
    if when is None and resource.effectivePeriod is not None:
        when = resource.effectivePeriod.start
    if when is None:
        raise InputError.at(loc, "an Observation needs effectiveDateTime (or effectivePeriod)")
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise InputError.at(loc, "needs a date, a time and a time zone, not only a date")
    if when > now + max_future:
        raise InputError.at(loc, f"is in the future (beyond now + {max_future})", "far_future")
    return when


def _collect(bundle: Any, now: datetime, max_future: timedelta) -> tuple[list[_Obs], dict, dict]:
    observations: list[_Obs] = []
    patients: dict[str, Any] = {}
    admissions: dict[str, datetime] = {}
    for i, entry in enumerate(bundle.entry or []):
        res = entry.resource
        kind = type(res).__name__ if res is not None else None
        if kind == "Observation":
            when = _effective(res, i, now, max_future)
            observations.append(_Obs(i, fhir_subject(res, i), when, res))
        elif kind == "Patient" and res.id:
            patients[res.id] = res
        elif kind == "Encounter" and res.period is not None and res.period.start is not None:
            subject = fhir_subject(res, i)
            if subject is not None and isinstance(res.period.start, datetime):
                admissions[subject] = res.period.start
    return observations, patients, admissions


def _values(res: Any) -> list[tuple[Any, float | None, str | None, str | None]]:
    """(codeable concept, value, unit, reason not used) of the resource and each component.

    A ``valueQuantity`` with a ``comparator`` (``<``, ``<=``, ``>=``, ``>``) is a censored
    value (troponin ``< 0.01``): it is not the exact value the model was trained on, so it
    is left out and reported (reason ``censored``), never used as if exact.
    """
    items = [(res.code, res)] + [(c.code, c) for c in (res.component or [])]
    out: list[tuple[Any, float | None, str | None, str | None]] = []
    for code, holder in items:
        q = getattr(holder, "valueQuantity", None)
        if q is not None and q.value is not None:
            unit = q.code if (q.code and (q.system in (None, UCUM_SYSTEM))) else q.unit
            value = float(q.value)
            reason = "censored" if q.comparator else None
            out.append((code, value, unit, reason if math.isfinite(value) else "not_finite"))
        elif getattr(holder, "valueInteger", None) is not None:
            out.append((code, float(holder.valueInteger), None, None))
        elif getattr(holder, "valueBoolean", None) is not None:
            out.append((code, float(holder.valueBoolean), None, None))
        elif holder is not res:
            out.append((code, None, None, None))
    return out


def _map_one(table: CodeTable, concept: Any, value: float | None, unit: str | None):
    codings = list(getattr(concept, "coding", None) or [])
    label = next((c.code for c in codings if c.code), getattr(concept, "text", None) or "?")
    for coding in codings:
        if coding.code and table.variable_of(coding.system, coding.code) is not None:
            if value is None:
                return coding.code, "no_value"
            return coding.code, table.map(
                coding.system, coding.code, value, unit, unit_required=True
            )
    return label, "unknown_code"


def _refuse(table: CodeTable, obs: _Obs) -> None:
    """A 422 naming the first coding (of the code or of a component) the table refuses."""
    res = obs.resource
    concepts = [(("code",), res.code)] + [
        (("component", k, "code"), c.code) for k, c in enumerate(res.component or [])
    ]
    for path, concept in concepts:
        for j, coding in enumerate(getattr(concept, "coding", None) or []):
            message = table.refusal(coding.system, coding.code) if coding.code else None
            if message is not None:
                loc = ("body", "entry", obs.index, "resource", *path, "coding", j, "code")
                raise InputError.at(loc, message, "refused_code")


def _add(history: History, obs: _Obs, admission: datetime, table: CodeTable) -> None:
    _refuse(table, obs)
    hours = (obs.when - admission).total_seconds() / 3600.0
    status = str(obs.resource.status)
    values = _values(obs.resource)
    if not values:
        values = [(obs.resource.code, None, None, None)]
    for concept, value, unit, reason in values:
        label, mapped = _map_one(table, concept, value, unit)
        if status not in ACCEPTED_STATUS:
            mapped = f"status:{status}"
        elif reason is not None:
            mapped = reason
        if not isinstance(mapped, Mapped):
            history.skipped.append({"index": obs.index, "code": label, "reason": mapped})
        elif mapped.static:
            history.static.setdefault(mapped.variable, mapped.value)
        elif mapped.variable == "Weight" and hours == 0 and "Weight" not in history.static:
            history.static["Weight"] = mapped.value
        else:
            history.observations.append(Observation(mapped.variable, hours, mapped.value))
            history.origins.append(obs.index)
            history.observation_ids.append(obs.resource.id or None)


def _patient_static(patient: Any, admission: datetime) -> dict[str, float]:
    static: dict[str, float] = {}
    if patient is None:
        return static
    if patient.gender in GENDER:
        static["Gender"] = GENDER[patient.gender]
    born = patient.birthDate
    if isinstance(born, date):
        day = admission.date()
        years = day.year - born.year - ((day.month, day.day) < (born.month, born.day))
        if 0 <= years <= 130:
            static["Age"] = float(years)
    return static


def histories_from_bundle(
    obj: dict[str, Any],
    table: CodeTable,
    *,
    now: datetime,
    max_future: timedelta,
    patient_id: str | None = None,
    admission: datetime | None = None,
) -> dict[str, History]:
    """Histories of every patient in a FHIR Bundle, keyed by patient id.

    With ``patient_id`` (streaming), every Observation must be about that patient (or
    have no subject) and ``admission`` is used when the Bundle has no Encounter.
    """
    bundle = fhir_bundle(obj, MAX_UPDATE if patient_id is not None else None)
    observations, patients, admissions = _collect(bundle, now, max_future)
    groups: dict[str, list[_Obs]] = {}
    for obs in observations:
        subject = obs.subject if obs.subject is not None else patient_id
        loc = ("body", "entry", obs.index, "resource", "subject")
        if subject is None:
            raise InputError.at(loc, "an Observation needs subject Patient/<id>")
        if patient_id is not None and subject != patient_id:
            raise InputError.at(loc, "is not the patient of the URL")
        groups.setdefault(subject, []).append(obs)
    if patient_id is not None:
        groups.setdefault(patient_id, [])
    out = {}
    for pid, items in groups.items():
        start = admissions.get(pid) or admission
        if start is None:
            start = min((o.when for o in items), default=now)
        history = History(pid, admission_time=start.isoformat())
        history.static.update(_patient_static(patients.get(pid), start))
        for obs in items:
            _add(history, obs, start, table)
        out[pid] = history
    return out


__all__ = ["histories_from_bundle", "is_fhir_bundle"]
