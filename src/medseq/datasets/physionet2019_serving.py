"""PhysioNet 2019 sepsis early warning over REST: the request body of the ``physionet2019`` spec.

Imported on the first request (pydantic), never when the dataset is read for training. The
body holds one or more ICU stays as the Challenge's hourly rows: one object per ICU hour,
the 40 variables of a ``.psv`` row by name (missing or ``null``: not measured that hour)::

    {"patients": [{"patient_id": "p1",
                   "hours": [{"ICULOS": 1, "HR": 97, "O2Sat": 95, "Age": 68.5, "Gender": 1},
                             {"ICULOS": 2, "HR": 102, "Temp": 38.4, "Lactate": 2.1}]}]}

Units are the Challenge's (``shared/data/physionet2019/SOURCE.md``, :data:`UNITS`); values
outside the reader's plausible ranges are left out and listed in ``skipped``, as the reader
leaves them out of a file. ``ICULOS`` (hours since ICU admission, a whole number) must rise
by exactly one from row to row: the model's clock is the row (hour 0 = the first row sent),
as in the Challenge's files, so an hour with nothing measured is a row with its ``ICULOS``
only. The descriptors (``Age``, ``Gender``, ``Unit1``, ``Unit2``, ``HospAdmTime``) are the
first row's, as the reader takes them; a later row that gives another value is listed in
``skipped``. At most the bundle's horizon (``n_steps``, 72 h) of rows per stay: the model
was trained on the first 72 hours.

The rows become the reader's tables (:func:`medseq.sources.physionet2019.from_rows`), then
take the dataset's clock step (:func:`medseq.datasets.physionet2019.on_grid_clock`) and its
``transform``, so every hour's risk is the one offline prediction gives for the same rows.
The answer has one step per row (``step`` = its ``ICULOS``).
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

import numpy as np
from pydantic import Field, create_model

from medseq.serving.requests import Parsed, RequestContext, RequestError, item_ids, validate
from medseq.serving.schemas import MAX_PATIENTS, Number, PatientId, Strict
from medseq.sources import physionet2019 as source

#: Hours per stay that a body may hold before the bundle's horizon is checked.
MAX_HOURS = 24 * 14
UNITS: dict[str, str] = {
    "HR": "beats/min", "O2Sat": "%", "Temp": "°C", "SBP": "mm Hg", "MAP": "mm Hg",
    "DBP": "mm Hg", "Resp": "breaths/min", "EtCO2": "mm Hg", "BaseExcess": "mmol/L",
    "HCO3": "mmol/L", "FiO2": "fraction (0-1)", "pH": "pH", "PaCO2": "mm Hg", "SaO2": "%",
    "AST": "IU/L", "BUN": "mg/dL", "Alkalinephos": "IU/L", "Calcium": "mg/dL",
    "Chloride": "mmol/L", "Creatinine": "mg/dL", "Bilirubin_direct": "mg/dL",
    "Glucose": "mg/dL", "Lactate": "mmol/L", "Magnesium": "mg/dL", "Phosphate": "mg/dL",
    "Potassium": "mmol/L", "Bilirubin_total": "mg/dL", "TroponinI": "ng/mL", "Hct": "%",
    "Hgb": "g/dL", "PTT": "s", "WBC": "10^3/µL", "Fibrinogen": "mg/dL",
    "Platelets": "10^3/µL",
}  # fmt: skip
DESCRIPTOR_BOUNDS: dict[str, tuple[float, float, str]] = {
    "Age": (0.0, 130.0, "years (100: 90 or older)"),
    "Gender": (0.0, 1.0, "0 female, 1 male"),
    "Unit1": (0.0, 1.0, "1: medical ICU"),
    "Unit2": (0.0, 1.0, "1: surgical ICU"),
    "HospAdmTime": (-1e5, 1e5, "hours from hospital to ICU admission (usually < 0)"),
}


@functools.cache
def hour_model() -> type[Strict]:
    """The pydantic model of one hourly row: ``ICULOS`` and the 39 other variables."""
    fields: dict[str, Any] = {
        "ICULOS": (Annotated[int, Field(strict=True, ge=1, le=24 * 366)], ...),
    }
    for name in source.VARIABLES:
        fields[name] = (Number | None, Field(default=None, description=UNITS[name]))
    for name, (low, high, text) in DESCRIPTOR_BOUNDS.items():
        fields[name] = (Number | None, Field(default=None, ge=low, le=high, description=text))
    return create_model("HourIn", __base__=Strict, **fields)


@functools.cache
def request_model() -> type[Strict]:
    """``{"patients": [{"patient_id", "hours": [row, ...]}]}`` (see the module doc)."""
    hour = hour_model()
    rows = Annotated[list[hour], Field(min_length=1, max_length=MAX_HOURS)]  # type: ignore[valid-type]
    stay = create_model("StayIn", __base__=Strict, patient_id=(PatientId, ...), hours=(rows, ...))
    stays = Annotated[list[stay], Field(min_length=1, max_length=MAX_PATIENTS)]  # type: ignore[valid-type]
    return create_model("SepsisRequest", __base__=Strict, patients=(stays, ...))


def _check_hours(hours: list[int], horizon: int, loc: tuple) -> None:
    """One row per ICU hour, consecutive, at most the bundle's horizon."""
    if len(hours) > horizon:
        raise RequestError.at(
            loc, f"{len(hours)} hours, at most {horizon}: the model reads the first "
            f"{horizon} hours of a stay (hour 0 = the first row); send its first {horizon}",
        )  # fmt: skip
    for j in range(1, len(hours)):
        if hours[j] != hours[j - 1] + 1:
            what = "a gap" if hours[j] > hours[j - 1] else "repeated or out of order"
            raise RequestError.at(
                (*loc, j, "ICULOS"),
                f"ICULOS {hours[j]} after {hours[j - 1]} is {what}: one row per ICU hour, "
                "in order (an hour with nothing measured is a row with its ICULOS only)",
            )


def _notes(values: np.ndarray, hour_index: np.ndarray) -> dict[str, Any]:
    """``n_events_used`` and ``skipped`` (implausible values, changed descriptors)."""
    n_vars = len(source.VARIABLES)
    lows = np.array([source.VALID_RANGES[v][0] for v in source.VARIABLES])
    highs = np.array([source.VALID_RANGES[v][1] for v in source.VARIABLES])
    cells = values[:, :n_vars]
    observed = ~np.isnan(cells)
    with np.errstate(invalid="ignore"):
        implausible = observed & ((cells < lows) | (cells > highs))
    skipped = [
        {"index": int(hour_index[r]), "code": source.VARIABLES[c], "reason": "implausible_value"}
        for r, c in zip(*np.nonzero(implausible), strict=True)
    ]
    for name in source.DESCRIPTORS:
        column = values[:, source.HEADER.index(name)]
        differs = ~((column == column[0]) | (np.isnan(column) & np.isnan(column[0])))
        differs &= ~np.isnan(column)
        skipped += [{"index": int(hour_index[r]), "code": name,
                     "reason": "descriptor_differs_from_first_hour"}
                    for r in np.flatnonzero(differs)]  # fmt: skip
    skipped.sort(key=lambda s: (s["index"], s["code"]))
    return {"n_events_used": int((observed & ~implausible).sum()), "skipped": skipped}


def parse(body: Any, context: RequestContext) -> Parsed:
    """Hourly rows -> the dataset's tables on its clock (ids 0..N-1, one step per row)."""
    request = validate(request_model(), body)
    names = [p.patient_id for p in request.patients]
    item_ids(names, ("body", "patients"))
    stays = [[row.model_dump(exclude_none=True) for row in p.hours] for p in request.patients]
    locs = [("body", "patients", k, "hours") for k in range(len(stays))]
    return parsed_stays(names, stays, context, locs)


def parsed_stays(
    names: list[str],
    stays: list[list[dict[str, float]]],
    context: RequestContext,
    locs: list[tuple],
    notes: list[dict[str, Any]] | None = None,
) -> Parsed:
    """Stays as hourly rows (``{"ICULOS": 1, "HR": 97.0, ...}``, validated names) ->
    :class:`Parsed`; ``locs`` name each stay's rows in errors. ``notes`` default to the
    values left out of the rows (implausible ones, changed descriptors)."""
    from medseq.datasets.physionet2019 import on_grid_clock
    from medseq.sources._psv import WideRows

    horizon = int(context.featurizer.n_steps)
    blocks, steps = [], []
    for stay, loc in zip(stays, locs, strict=True):
        hours = [int(row["ICULOS"]) for row in stay]
        _check_hours(hours, horizon, loc)
        block = np.full((len(hours), len(source.HEADER)), np.nan)
        for j, row in enumerate(stay):
            for name, value in row.items():
                block[j, source.HEADER.index(name)] = float(value)
        blocks.append(block)
        steps.append(hours)
    if notes is None:
        notes = [_notes(block, np.arange(len(block))) for block in blocks]
    patient = np.repeat(np.arange(len(blocks)), [len(b) for b in blocks])
    values = np.concatenate(blocks)
    rows = WideRows(patient, np.arange(len(values), dtype=np.int64) + 2, values)
    ids = np.arange(len(blocks), dtype=np.int64)
    data = on_grid_clock(source.from_rows(rows, ids))
    return Parsed(data, ids, names, notes, steps=steps)
