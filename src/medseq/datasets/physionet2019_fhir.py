"""PhysioNet 2019 sepsis early warning from a FHIR R4 Bundle: vital-sign Observations.

The ``fhir`` part of the ``physionet2019`` spec, imported on the first FHIR request. A Bundle
of ``Observation`` resources (LOINC codes, UCUM units), with ``Patient`` (``gender``,
``birthDate``) and ``Encounter`` (``period.start`` = ICU admission) resources, is read by
:func:`medseq.serving.fhir.histories_from_bundle` with this dataset's code table
(:data:`TABLE`: the eight vital signs of the Challenge, Age and Gender), then binned into
the Challenge's hourly rows: an observation ``t`` hours after admission belongs to the row
``ICULOS = floor(t) + 1``, and every hour from the first to the last one observed is a
row. Those rows take the path of the rows body (:func:`~medseq.datasets.
physionet2019_serving.parsed_stays`), so a Bundle and the rows it bins to get the same
answer.

Left out and listed in ``skipped`` (never silently): codes outside the table (laboratory
values have no FHIR form here yet: send the rows body for them), units the table cannot
convert, implausible values, observations before admission, and an earlier value of a
variable observed twice in one hour (a row holds one value per variable: the latest is
kept). Unit1, Unit2 and HospAdmTime have no FHIR source here and are missing (as in 8,561
stays of set A for the units).
"""

from __future__ import annotations

import functools
import math
from typing import Any

from medseq.datasets.physionet2019_serving import parsed_stays
from medseq.serving.codes import CodeTable
from medseq.serving.inputs import History
from medseq.serving.requests import Parsed, RequestContext, RequestError
from medseq.serving.schemas import MAX_PATIENTS
from medseq.sources.physionet2019 import DESCRIPTORS, VALID_RANGES

_MMHG = {"kPa": [7.500617, 0]}
#: LOINC and UCUM of the vital signs (the HL7 FHIR vital-signs profile codes; invasive
#: pressures too), Age and Gender; every code passes LOINC's mod-10 check digit (tested).
#: O2Sat is pulse oximetry (59408-5); 2708-6, arterial blood, is the laboratory's SaO2.
TABLE: dict[str, Any] = {
    "local_system": "urn:medseq:physionet2019",
    "variables": {
        "HR": {"loinc": ["8867-4"], "unit": "/min", "convert": {"{beats}/min": [1, 0]}},
        "O2Sat": {"loinc": ["59408-5"], "unit": "%", "convert": {"1": [100, 0]}},
        "Temp": {"loinc": ["8310-5"], "unit": "Cel", "convert": {"[degF]": [5 / 9, -160 / 9]}},
        "SBP": {"loinc": ["8480-6", "76215-3"], "unit": "mm[Hg]", "convert": _MMHG},
        "MAP": {"loinc": ["8478-0", "76214-6"], "unit": "mm[Hg]", "convert": _MMHG},
        "DBP": {"loinc": ["8462-4", "76213-8"], "unit": "mm[Hg]", "convert": _MMHG},
        "Resp": {"loinc": ["9279-1"], "unit": "/min", "convert": {"{breaths}/min": [1, 0]}},
        "EtCO2": {"loinc": ["19889-5"], "unit": "mm[Hg]", "convert": _MMHG},
    },
    "static": {
        "Age": {"loinc": ["30525-0"], "unit": "a", "convert": {}},
        "Gender": {"loinc": [], "unit": "1", "convert": {}},
    },
}
DESCRIPTOR_RANGES = {"Age": (0.0, 130.0), "Gender": (0.0, 1.0)}


@functools.cache
def code_table() -> CodeTable:
    """:data:`TABLE` with the reader's plausible ranges."""
    return CodeTable(TABLE, {**VALID_RANGES, **DESCRIPTOR_RANGES}, ("Gender",))


def hourly_rows(history: History) -> tuple[list[dict[str, float]], list[dict[str, Any]]]:
    """A history's observations as the Challenge's hourly rows, and what was left out."""
    skipped = list(history.skipped)
    cells: dict[int, dict[str, tuple[float, int, float]]] = {}
    for obs, origin in zip(history.observations, history.origins, strict=True):
        if obs.time < 0:
            skipped.append({"index": origin, "code": obs.code, "reason": "before_admission"})
            continue
        hour = cells.setdefault(math.floor(obs.time), {})
        earlier = hour.get(obs.code)
        if earlier is not None and earlier[0] > obs.time:
            skipped.append({"index": origin, "code": obs.code, "reason": "superseded_in_hour"})
            continue
        if earlier is not None:
            skipped.append({"index": earlier[1], "code": obs.code, "reason": "superseded_in_hour"})
        hour[obs.code] = (obs.time, origin, obs.value)
    last = max(cells, default=0)
    rows: list[dict[str, float]] = [
        {"ICULOS": h + 1, **{code: cell[2] for code, cell in cells.get(h, {}).items()}}
        for h in range(last + 1)
    ]
    rows[0].update({k: v for k, v in history.static.items() if k in DESCRIPTORS})
    skipped.sort(key=lambda s: (s["index"], s["code"]))
    used = sum(len(hour) for hour in cells.values())
    return rows, [{"n_events_used": used, "skipped": skipped}]


def parse(body: Any, context: RequestContext) -> Parsed:
    """A FHIR R4 Bundle of one or more patients' vital signs -> hourly rows -> Parsed."""
    from medseq.serving.fhir import histories_from_bundle

    histories = histories_from_bundle(
        body, code_table(), now=context.now, max_future=context.max_future
    )
    if not histories:
        raise RequestError.at(("body", "entry"), "the Bundle holds no Observation")
    if len(histories) > MAX_PATIENTS:
        raise RequestError.at(("body", "entry"), f"more than {MAX_PATIENTS} patients")
    stays, notes = [], []
    for history in histories.values():
        rows, note = hourly_rows(history)
        stays.append(rows)
        notes += note
    locs = [("body", "entry")] * len(stays)
    return parsed_stays(list(histories), stays, context, locs, notes)
