"""Visit histories over REST: the request bodies of the MIMIC-III and MEDS specs.

Imported on the first request. Codes use the history readers' names
(:mod:`medseq.sources.history`): ``ICD9DX/<code>`` diagnoses and ``ICD9PX/<code>``
procedures without the dot, ``NDC/<11 digits>`` or ``DRUG/<name>`` prescriptions,
``ADMISSION/<type>``.

Codes per visit (``request`` part)::

    {"patients": [{"patient_id": "p1",
                   "visits": [{"codes": ["ADMISSION/EMERGENCY", "ICD9DX/4019"]},
                              {"codes": ["ADMISSION/ELECTIVE", "ICD9DX/25000"]}]}]}

Visits are in time order; the prediction is made after the last one (next-visit tasks:
the diagnoses of the visit to come; mortality: the outcome of the last, current stay from
what it holds so far), exactly as the training samples see the visits before their cutoff.

FHIR R4 (``fhir`` part): a Bundle of ``Encounter`` (one per visit, ordered by
``period.start``), ``Condition`` (ICD-9-CM diagnoses), ``Procedure`` (ICD-9-CM
procedures) and ``MedicationRequest`` (NDC ``medicationCodeableConcept``) resources, each
pointing at its encounter (``encounter.reference = "Encounter/<id>"``) and its patient
(``subject``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from medseq.serving.requests import (
    MAX_ITEMS,
    Parsed,
    RequestContext,
    RequestError,
    fhir_bundle,
    fhir_subject,
    item_ids,
    validate,
)
from medseq.serving.schemas import PatientId, Strict

#: Hours between the starts of consecutive request visits (each lasts half of it); only the
#: order matters to the featurizer, which reads visits before the prediction time.
VISIT_HOURS = 10.0
ICD9_SYSTEM = "http://hl7.org/fhir/sid/icd-9-cm"
NDC_SYSTEM = "http://hl7.org/fhir/sid/ndc"
PREFIX_OF = {"Condition": "ICD9DX/", "Procedure": "ICD9PX/", "MedicationRequest": "NDC/"}


class VisitIn(Strict):
    codes: list[str] = Field(max_length=2000, description="Namespaced codes, e.g. ICD9DX/4019.")


class PatientVisitsIn(Strict):
    patient_id: PatientId
    visits: list[VisitIn] = Field(min_length=1, max_length=1000)


class VisitsRequest(Strict):
    """``POST /v1/predict`` for visit-history bundles (codes per visit)."""

    patients: list[PatientVisitsIn] = Field(min_length=1, max_length=MAX_ITEMS)


def parse_visits(body: Any, context: RequestContext) -> Parsed:
    """Codes per visit -> a :class:`~medseq.datasets.histories.HistoryData` and its samples."""
    request = validate(VisitsRequest, body)
    names = [p.patient_id for p in request.patients]
    item_ids(names, ("body", "patients"))
    for k, patient in enumerate(request.patients):
        for v, visit in enumerate(patient.visits):
            bad = [c for c in visit.codes if "/" not in c and not c.startswith("MEDS_")]
            if bad:
                loc = ("body", "patients", k, "visits", v, "codes")
                raise RequestError.at(loc, "codes are namespaced, e.g. ICD9DX/4019, NDC/...")
    return histories_parsed([[v.codes for v in p.visits] for p in request.patients], names)


def histories_parsed(patients: list[list[list[str]]], names: list[str]) -> Parsed:
    """Visits (codes per visit, per patient) as the history readers' tables."""
    from medseq.datasets.histories import HistoryData
    from medseq.schema import ReadReport
    from medseq.sources.history import HistorySet

    events, visits, samples = [], [], []
    for k, patient in enumerate(patients):
        for v, codes in enumerate(patient):
            start = v * VISIT_HOURS
            visits.append((k, v, start, start + VISIT_HOURS / 2))
            events += [(k, start + 1.0, code, np.nan) for code in codes]
        samples.append((k, k, len(patient) * VISIT_HOURS))
    history = HistorySet(
        events=pd.DataFrame(events, columns=["subject_id", "time", "code", "value"]).astype(
            {"subject_id": "int64", "time": "float64", "code": "object", "value": "float64"}
        ),
        visits=pd.DataFrame(visits, columns=["subject_id", "visit", "start", "end"]),
        origin=pd.Series(pd.Timestamp(0), index=pd.Index(range(len(patients)), dtype="int64")),
        report=ReadReport(source="request", n_subjects=len(patients)),
    )
    table = pd.DataFrame(samples, columns=["sample_id", "subject_id", "cutoff"])
    table = table.set_index("sample_id")
    ids = table.index.to_numpy(dtype=np.int64)
    return Parsed(HistoryData(history, samples=table), ids, names)


def parse_fhir(body: Any, context: RequestContext) -> Parsed:
    """A FHIR Bundle of Encounters and their Conditions, Procedures, MedicationRequests."""
    bundle = fhir_bundle(body)
    encounters: dict[str, tuple[str, Any]] = {}  # id -> (patient, start)
    coded: list[tuple[int, str, str]] = []  # (entry index, encounter id, code)
    for i, entry in enumerate(bundle.entry or []):
        res = entry.resource
        kind = type(res).__name__
        where = ("body", "entry", i, "resource")
        if kind == "Encounter":
            patient = fhir_subject(res, i)
            start = res.period.start if res.period is not None else None
            if patient is None or start is None or not res.id:
                raise RequestError.at(where, "an Encounter needs id, subject and period.start")
            encounters[res.id] = (patient, start)
        elif kind in PREFIX_OF:
            coded += [(i, _encounter_of(res, where), c) for c in _codes(res, kind, where)]
    if not encounters:
        raise RequestError.at(("body", "entry"), "the Bundle holds no Encounter")
    by_patient: dict[str, list[str]] = {}
    for eid, (patient, _start) in sorted(encounters.items(), key=lambda e: str(e[1][1])):
        by_patient.setdefault(patient, []).append(eid)
    codes: dict[str, list[str]] = {eid: [] for eid in encounters}
    for i, eid, code in coded:
        if eid not in codes:
            loc = ("body", "entry", i, "resource", "encounter", "reference")
            raise RequestError.at(loc, f"Encounter/{eid} is not in the Bundle")
        codes[eid].append(code)
    names = list(by_patient)
    return histories_parsed([[codes[e] for e in by_patient[p]] for p in names], names)


def _encounter_of(res: Any, where: tuple) -> str:
    text = getattr(getattr(res, "encounter", None), "reference", None) or ""
    if not text.startswith("Encounter/") or text == "Encounter/":
        raise RequestError.at((*where, "encounter", "reference"), "needs Encounter/<id>")
    return text[len("Encounter/") :]


def _codes(res: Any, kind: str, where: tuple) -> list[str]:
    field = "medicationCodeableConcept" if kind == "MedicationRequest" else "code"
    concept = getattr(res, field, None)
    system = NDC_SYSTEM if kind == "MedicationRequest" else ICD9_SYSTEM
    found = [
        PREFIX_OF[kind] + str(c.code).replace(".", "").replace("-", "")
        for c in (getattr(concept, "coding", None) or [])
        if c.system == system and c.code
    ]
    if not found:
        raise RequestError.at((*where, field, "coding"), f"needs a code of system {system}")
    return found
