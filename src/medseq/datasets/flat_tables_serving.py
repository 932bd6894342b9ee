"""Flat-table exports over REST: a patient's rows of the tables, read through the bundle's mapping.

Imported on the first request (the ``request`` part of ``flat_events`` and ``flat_icu``).
The body names each table as the mapping does, by its file name without extensions
(``"patient"`` for ``patient.csv.gz``), and gives its rows as objects with the CSV's
column names::

    {"tables": {"patient": [{"patientunitstayid": "141765", "unittype": "Med-Surg ICU",
                             ...}],
                "vitalAperiodic": [{"patientunitstayid": "141765",
                                    "observationoffset": "63", ...}]},
     "prediction_hour": 24}

The rows go through the mapping the bundle was trained with (training stores it,
:func:`medseq.sources.flat_events.mapping_state`) and the very parsing of a file
(:mod:`medseq.sources._flat_parse`, :func:`medseq.sources.flat_events.events_from_parsed`):
cells are read as the CSV's text (numbers are written as text first; a missing key or
null is an empty cell), rows the mapping's ``on_bad_row`` would drop are dropped and
counted in the answer (``dropped_rows``), and under ``on_bad_row = "raise"`` a bad row is
a 422 naming the table, the row and the column. Columns the mapping does not read are
ignored, as in a file; a table the mapping does not read is refused by name.

``flat_events`` then builds the task's samples as training does
(:func:`medseq.datasets.event_tasks_serving.samples_at`), at the task's prediction time,
or at ``prediction_hour`` (exports with relative times: hours since each subject's hour 0)
or ``prediction_time`` (exports with date-times) when the body gives one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medseq.serving.requests import MAX_ITEMS, Parsed, RequestContext, RequestError

#: Rows of all tables in one request; the service's body-size limit applies first.
MAX_ROWS = 100_000
_FIELD_KEYS = {"subject": "subject", "time": "time", "code": "code", "value": "value"}


def table_name(path: str) -> str:
    """The name a request gives a mapped file: its name without extensions."""
    name = Path(path).name
    for suffix in (".gz", ".csv", ".tsv", ".parquet"):
        name = name.removesuffix(suffix)
    return name


@dataclass
class RowTables:
    """A request's tables as text frames, and the rows dropped by ``on_bad_row``."""

    frames: dict[str, pd.DataFrame]
    dropped: dict[str, int] = field(default_factory=dict)


def stored_state(context: RequestContext) -> dict[str, Any]:
    state = context.request_state
    if not state or "mapping" not in state:
        raise RequestError.at(
            ("body",),
            "this bundle stores no table mapping (trained before mappings were kept in the "
            "bundle, or by `medseq federate`, which does not keep it yet): retrain it with "
            "`medseq train` to serve rows",
            "unsupported",
        )
    return dict(state)


def _cell(value: Any, loc: tuple[Any, ...]) -> str:
    """A JSON cell as the CSV's text: null is empty, numbers are written as text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError.at(loc, "a cell must be a string, a number or null")
    return str(value)


def text_tables(
    body: Any, columns: Mapping[str, set[str]], loc: tuple[Any, ...] = ("body", "tables")
) -> dict[str, pd.DataFrame]:
    """``body["tables"]`` as one text frame per table, with the ``columns`` read of each.

    A table the mapping does not read, a row that is not an object, a cell that is not a
    scalar, or a read column present in no row is a 422 naming it; a column missing from
    some rows is empty there (a CSV's empty cell).
    """
    if not isinstance(body, dict) or not isinstance(body.get("tables"), dict):
        raise RequestError.at(loc, "must be an object: table name -> list of row objects")
    tables = body["tables"]
    unknown = sorted(set(tables) - set(columns))
    if unknown:
        raise RequestError.at(
            (*loc, unknown[0]), f"the mapping reads no table {unknown[0]!r}; it reads "
            f"{sorted(columns)}",
        )  # fmt: skip
    n_rows = sum(len(rows) for rows in tables.values() if isinstance(rows, list))
    if n_rows > MAX_ROWS:
        raise RequestError.at(loc, f"{n_rows} rows; at most {MAX_ROWS} a request")
    frames = {}
    for name, rows in tables.items():
        if not isinstance(rows, list):
            raise RequestError.at((*loc, name), "must be a list of row objects")
        frames[name] = _frame(rows, sorted(columns[name]), (*loc, name))
    return frames


def _frame(rows: list[Any], columns: list[str], loc: tuple[Any, ...]) -> pd.DataFrame:
    seen: set[str] = set()
    cells: dict[str, list[str]] = {c: [] for c in columns}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise RequestError.at((*loc, i), "a row must be an object: column -> cell")
        seen.update(row)
        for c in columns:
            cells[c].append(_cell(row.get(c), (*loc, i, c)))
    absent = [c for c in columns if c not in seen]
    if rows and absent:
        raise RequestError.at(
            loc, f"column {absent[0]!r} is in no row; the mapping reads {columns}"
        )
    return pd.DataFrame(cells, columns=columns, dtype=object)


def _columns(mapping: Any) -> set[str]:
    time = None if mapping.at_hour is not None else mapping.time
    named = [mapping.subject, time, mapping.unit]
    if mapping.values is None:
        named += [mapping.code, mapping.value]
    return {c for c in named if c} | set(mapping.values or {})


def read_rows(
    body: Any, context: RequestContext, extra: Mapping[str, set[str]] | None = None
) -> tuple[Any, RowTables]:
    """The request's rows of the mapped event tables as the training reader's events.

    Returns the :class:`~medseq.sources.flat_events.FlatEventSet`, the text frames by
    table (``extra`` names more tables and columns to read, e.g. ``flat_icu``'s static
    table) and the dropped-row counts.
    """
    from medseq.schema import DataError, ReadReport
    from medseq.sources import flat_events

    state = stored_state(context)
    raw = state["mapping"]
    mappings = [flat_events.FlatMapping.from_dict(m) for m in raw["events"]]
    columns: dict[str, set[str]] = {k: set(v) for k, v in (extra or {}).items()}
    for m in mappings:
        columns.setdefault(table_name(str(m.path)), set()).update(_columns(m))
    frames = text_tables(body, columns)
    on_bad_row = raw.get("on_bad_row", "raise")
    report = ReadReport(source="request")
    parsed = [_parsed(frames, m, on_bad_row, report) for m in mappings]
    try:
        read = flat_events.events_from_parsed(
            parsed, mappings, report,
            on_unit_mismatch=raw.get("on_unit_mismatch", "warn"), units=state.get("units"),
        )  # fmt: skip
    except DataError as err:
        raise RequestError.at(("body", "tables"), str(err)) from None
    if read.events.empty:
        raise RequestError.at(("body", "tables"), "no event in the rows: nothing to predict")
    dropped = {k: int(v) for k, v in report.counts.items() if k.startswith("bad_row:")}
    return read, RowTables(frames, dropped)


def _parsed(
    frames: dict[str, pd.DataFrame], mapping: Any, on_bad_row: str, report: Any
) -> pd.DataFrame:
    """One mapping's table of the request, parsed as a file is: bad rows refused naming
    table, row and column (``on_bad_row = "raise"``), or dropped and counted."""
    from medseq.sources import _flat_parse

    name = table_name(str(mapping.path))
    empty = pd.DataFrame({c: [] for c in _columns(mapping)}, dtype=object)
    long = _flat_parse.long_form(frames.get(name, empty), mapping)
    frame, bad = _flat_parse.parse(long, mapping)
    rows = long["__row__"].to_numpy()
    for key, mask in bad.items():
        if mask.any() and on_bad_row == "raise":
            first = int(np.flatnonzero(mask)[0])
            raise RequestError.at(
                ("body", "tables", name, int(rows[first]), _bad_column(mapping, key, long, first)),
                f"{key} does not parse ({int(mask.sum())} such rows in {name!r})",
            )
        if mask.any():
            report.add(f"bad_row:{key}", int(mask.sum()))
    keep = ~np.column_stack(list(bad.values())).any(axis=1)
    return frame[keep].reset_index(drop=True)


def _bad_column(mapping: Any, key: str, long: pd.DataFrame, position: int) -> str:
    """The request column behind a bad field of the long frame's entry at ``position``
    (a wide table's cell: the column of that cell's code)."""
    if mapping.values is not None and key in ("code", "value"):
        code = long["__code__"].iloc[position]
        return next(c for c, named in mapping.values.items() if named == code)
    return str(getattr(mapping, _FIELD_KEYS[key]))


def _when(body: dict[str, Any], relative: bool, context: RequestContext) -> Any:
    from medseq.datasets.event_tasks_serving import When, instant

    rows_loc = ("body", "tables")
    hour, stamp = body.get("prediction_hour"), body.get("prediction_time")
    if relative and stamp is not None:
        raise RequestError.at(
            ("body", "prediction_time"), "this export's times are hours since each subject's "
            "hour 0, not date-times: give prediction_hour",
        )  # fmt: skip
    if not relative and hour is not None:
        raise RequestError.at(
            ("body", "prediction_hour"), "this export's times are date-times: give "
            "prediction_time (ISO 8601)",
        )  # fmt: skip
    if hour is not None:
        if isinstance(hour, bool) or not isinstance(hour, int | float) or not np.isfinite(hour):
            raise RequestError.at(("body", "prediction_hour"), "must be a number of hours")
        return When(loc=("body", "prediction_hour"), rows_loc=rows_loc, hour=float(hour))
    loc = ("body", "prediction_hour" if relative else "prediction_time")
    return When(loc=loc, rows_loc=rows_loc, stamp=instant(stamp, loc, context))


def parse(body: Any, context: RequestContext) -> Parsed:
    """A ``flat_events`` request: rows of the mapped tables -> the task's samples."""
    from medseq.datasets.event_tasks_serving import samples_at
    from medseq.datasets.flat_tables import FlatTaskData

    extra = sorted(set(body) - {"tables", "prediction_hour", "prediction_time"}) if isinstance(
        body, dict) else []  # fmt: skip
    if extra:
        raise RequestError.at(("body", extra[0]), "unknown field; the body has tables, and "
                              "optionally prediction_hour or prediction_time")  # fmt: skip
    read, tables = read_rows(body, context)
    n_subjects = int(read.events["subject_id"].nunique())
    if n_subjects > MAX_ITEMS:
        raise RequestError.at(("body", "tables"), f"rows of {n_subjects} subjects; at most "
                              f"{MAX_ITEMS} a request")  # fmt: skip
    origin = read.origin if read.origin is not None else pd.Series(dtype="datetime64[us]")
    data = FlatTaskData(events=read.events, origin=origin, report=read.report)
    parsed = samples_at(data, context, _when(body, read.origin is None, context))
    if tables.dropped:
        for note in parsed.notes:
            note["dropped_rows"] = dict(tables.dropped)
    return parsed


#: The example body of the OpenAPI page: one eICU stay's rows of two mapped tables.
EXAMPLE: dict[str, Any] = {
    "tables": {
        "patient": [{"patientunitstayid": "141765", "hospitalid": "73",
                     "unittype": "Med-Surg ICU", "gender": "Female",
                     "hospitaldischargeoffset": "2450", "hospitaldischargestatus": ""}],
        "vitalAperiodic": [{"patientunitstayid": "141765", "observationoffset": "63",
                            "noninvasivesystolic": "118", "noninvasivediastolic": "61"}],
    },
    "prediction_hour": 24,
}  # fmt: skip
