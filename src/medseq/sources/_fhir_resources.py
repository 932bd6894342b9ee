"""One FHIR R4 resource (a parsed dict) -> raw event rows; the field rules live here.

Each handler appends ``(subject reference, time string, code, value, unit, document,
entry, resource type)`` tuples to :attr:`Rows.rows`; times stay strings and references
stay raw until :mod:`medseq.sources.fhir_r4` parses and resolves them all at once
(vectorised). A handler raises :class:`BadEntry` for an entry it cannot read; the caller
counts it (``bad_entry:<Type>:<reason>``) or raises, by policy. Entries that are valid but
say they are void (``status`` ``entered-in-error``, ``cancelled``, ``not-done``, ...) are
counted as ``status:<Type>:<status>`` and give no event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

NAN = float("nan")
UCUM = "http://unitsofmeasure.org"
ENCOUNTER_PREFIX = "ENCOUNTER/"
ENCOUNTER_END_PREFIX = "ENCOUNTER_END/"
OBSERVATION_STATUS = frozenset({"final", "amended", "corrected", "preliminary"})
VOID_STATUS = frozenset({"entered-in-error", "cancelled", "not-done", "revoked", "refuted"})
NON_NUMERIC_VALUES = (
    "valueString",
    "valueDateTime",
    "valuePeriod",
    "valueRatio",
    "valueRange",
    "valueSampledData",
    "valueTime",
)

TIME_FIELDS = (
    "effectiveDateTime",
    "effectivePeriod",
    "effectiveInstant",
    "issued",
    "onsetDateTime",
    "onsetPeriod",
    "recordedDate",
    "authoredOn",
    "performedDateTime",
    "performedPeriod",
    "occurrenceDateTime",
    "recorded",
    "period",
)
#: Every top-level field a handler (or the Patient collector) reads. The typed JSON decoder
#: (:mod:`medseq.sources._fhir_files`) keeps only these and skips the rest unparsed.
FIELDS = (
    "resourceType",
    "id",
    "status",
    "gender",
    "birthDate",
    "deceasedDateTime",
    "code",
    "subject",
    "patient",
    "valueQuantity",
    "valueCodeableConcept",
    "valueInteger",
    "valueBoolean",
    *NON_NUMERIC_VALUES,
    "component",
    "class",
    "type",
    "verificationStatus",
    "medicationCodeableConcept",
    "medicationReference",
    "vaccineCode",
    *TIME_FIELDS,
)


class BadEntry(Exception):
    """An entry that cannot be read: ``reason`` is a short key, ``detail`` the full story."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Rows:
    """Raw event rows of many resources, with where each came from."""

    def __init__(self, report_add: Callable[[str, int], None]) -> None:
        self.rows: list[tuple] = []
        self.add_count = report_add
        self.doc = 0
        self.entry = 0
        self.kind = ""

    def emit(self, ref: str, when: str, code: str, value: float = NAN, unit: Any = None) -> None:
        self.rows.append((ref, when, code, value, unit, self.doc, self.entry, self.kind))


def coded(concept: Any, field: str) -> str:
    """``system|code`` of the first coding that has a code (``code`` alone without system)."""
    if isinstance(concept, dict):
        for coding in concept.get("coding") or ():
            code = coding.get("code") if isinstance(coding, dict) else None
            if code:
                system = coding.get("system")
                return f"{system}|{code}" if system else str(code)
    raise BadEntry("no_code", f"{field} has no coding with a code (got {concept!r:.80})")


def subject_of(res: dict) -> str:
    """The raw patient reference of a resource (``subject``, or ``patient``)."""
    holder = res.get("subject") or res.get("patient")
    ref = holder.get("reference") if isinstance(holder, dict) else None
    if not ref or not isinstance(ref, str):
        raise BadEntry("no_subject", "no subject.reference (or patient.reference)")
    return ref


def _void(res: dict, rows: Rows) -> bool:
    status = res.get("status")
    if status in VOID_STATUS:
        rows.add_count(f"status:{rows.kind}:{status}", 1)
        return True
    return False


def _first_time(res: dict, fields: tuple[str, ...], rows: Rows) -> str:
    for i, field in enumerate(fields):
        head, _, tail = field.partition(".")
        value = res.get(head)
        if tail and isinstance(value, dict):
            value = value.get(tail)
        if value and isinstance(value, str):
            if i:
                rows.add_count(f"time_from:{rows.kind}.{field}", 1)
            return value
    raise BadEntry("no_time", f"no time: none of {', '.join(fields)}")


def _value(rows: Rows, ref: str, when: str, code: str, holder: dict) -> bool:
    """Emit the value of an Observation or component; False when it has none."""
    quantity = holder.get("valueQuantity")
    if quantity is not None:
        number = quantity.get("value") if isinstance(quantity, dict) else None
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise BadEntry("bad_quantity", f"valueQuantity.value is not a number: {number!r}")
        ucum = quantity.get("system") == UCUM and quantity.get("code")
        rows.emit(
            ref, when, code, float(number), quantity.get("code") if ucum else quantity.get("unit")
        )
        return True
    concept = holder.get("valueCodeableConcept")
    if concept is not None:
        rows.emit(ref, when, f"{code}={coded(concept, 'valueCodeableConcept')}")
        return True
    integer = holder.get("valueInteger")
    if integer is not None and not isinstance(integer, bool):
        rows.emit(ref, when, code, float(integer))
        return True
    flag = holder.get("valueBoolean")
    if isinstance(flag, bool):
        rows.emit(ref, when, code, 1.0 if flag else 0.0)
        return True
    for key in NON_NUMERIC_VALUES:
        if holder.get(key) is not None:
            rows.emit(ref, when, code)
            rows.add_count(f"value_not_numeric:{key}", 1)
            return True
    return False


def observation(res: dict, rows: Rows) -> None:
    """Observation: one event, or one per ``component`` (the panel itself then gives none)."""
    status = res.get("status")
    if status not in OBSERVATION_STATUS:
        rows.add_count(f"status:Observation:{status}", 1)
        return
    ref = subject_of(res)
    when = _first_time(
        res, ("effectiveDateTime", "effectivePeriod.start", "effectiveInstant", "issued"), rows
    )
    code = coded(res.get("code"), "code")
    has_value = _value(rows, ref, when, code, res)
    components = res.get("component") or ()
    for part in components:
        part_code = coded(part.get("code"), "component.code")
        if not _value(rows, ref, when, part_code, part):
            rows.emit(ref, when, part_code)
            rows.add_count("component_without_value", 1)
    if not has_value and not components:
        rows.emit(ref, when, code)
        rows.add_count("observation_without_value", 1)


def encounter(res: dict, rows: Rows) -> None:
    """Encounter: ``ENCOUNTER/<class>`` and its types at the start, ``ENCOUNTER_END/<class>``."""
    if _void(res, rows):
        return
    ref = subject_of(res)
    period = res.get("period") or {}
    start, end = period.get("start"), period.get("end")
    if not start:
        raise BadEntry("no_time", "no period.start")
    klass = (res.get("class") or {}).get("code")
    if not klass:
        rows.add_count("encounter_class_missing", 1)
        klass = "UNKNOWN"
    rows.emit(ref, start, ENCOUNTER_PREFIX + klass)
    for concept in res.get("type") or ():
        rows.emit(ref, start, coded(concept, "type"))
    if end:
        rows.emit(ref, end, ENCOUNTER_END_PREFIX + klass)
    else:
        rows.add_count("encounter_without_end", 1)


def condition(res: dict, rows: Rows) -> None:
    """Condition: its code at the onset (else when recorded)."""
    status = (res.get("verificationStatus") or {}).get("coding") or [{}]
    if status[0].get("code") in VOID_STATUS:
        rows.add_count(f"status:Condition:{status[0].get('code')}", 1)
        return
    ref = subject_of(res)
    when = _first_time(res, ("onsetDateTime", "onsetPeriod.start", "recordedDate"), rows)
    rows.emit(ref, when, coded(res.get("code"), "code"))


def medication_request(res: dict, rows: Rows) -> None:
    """MedicationRequest: the medication's code when authored."""
    if _void(res, rows):
        return
    ref = subject_of(res)
    when = _first_time(res, ("authoredOn",), rows)
    if res.get("medicationCodeableConcept") is None and res.get("medicationReference"):
        raise BadEntry(
            "medication_reference",
            "medicationReference is not resolved; export medicationCodeableConcept",
        )
    rows.emit(ref, when, coded(res.get("medicationCodeableConcept"), "medicationCodeableConcept"))


def procedure(res: dict, rows: Rows) -> None:
    """Procedure: its code when performed (the start of a performed period)."""
    if _void(res, rows):
        return
    ref = subject_of(res)
    when = _first_time(res, ("performedDateTime", "performedPeriod.start"), rows)
    rows.emit(ref, when, coded(res.get("code"), "code"))


def immunization(res: dict, rows: Rows) -> None:
    """Immunization: the vaccine code when given."""
    if _void(res, rows):
        return
    ref = subject_of(res)
    when = _first_time(res, ("occurrenceDateTime", "recorded"), rows)
    rows.emit(ref, when, coded(res.get("vaccineCode"), "vaccineCode"))


HANDLERS: dict[str, Callable[[dict, Rows], None]] = {
    "Observation": observation,
    "Encounter": encounter,
    "Condition": condition,
    "MedicationRequest": medication_request,
    "Procedure": procedure,
    "Immunization": immunization,
}
