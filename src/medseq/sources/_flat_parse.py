"""Parsing one flat event file for :mod:`medseq.sources.flat_events`: columns, types, bad rows.

A *long* file has a code column (one event per row); a *wide* file has one column per code
(``values = {column: code}``: one event per non-empty cell, e.g. eICU's vitalAperiodic).
Wide files are first turned long, keeping each cell's original row number, so both forms
share the parsing and the error messages (``file:line`` for CSV, header = line 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from medseq.schema import DataError, OnBad, ReadReport

if TYPE_CHECKING:
    from medseq.sources.flat_events import FlatMapping

#: hours per unit of a numeric (relative) time column
TIME_UNITS = {"seconds": 1 / 3600, "minutes": 1 / 60, "hours": 1.0, "days": 24.0}
_CODE, _VALUE, _ROW = "__code__", "__value__", "__row__"


def load(file: Path, mapping: FlatMapping) -> tuple[pd.DataFrame, int]:
    """The mapped columns, long (``__code__``, ``__value__``, ``__row__``); first data line.

    CSV columns are read as strings (so a bad cell is found and named, not guessed);
    parquet columns as stored.
    """
    time = None if mapping.at_hour is not None else mapping.time
    keys = {"subject": mapping.subject, "time": time, "unit": mapping.unit}
    if mapping.values is None:
        keys.update(code=mapping.code, value=mapping.value)
    wanted = [c for c in keys.values() if c] + list(mapping.values or {})
    name = file.name.lower()
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        check_columns(file, keys, mapping, pq.read_schema(file).names)
        frame, first_line = pq.read_table(file, columns=wanted).to_pandas(), 0
    else:
        sep = "\t" if name.endswith((".tsv", ".tsv.gz")) else ","
        try:
            have = list(pd.read_csv(file, nrows=0, sep=sep).columns)
        except (ValueError, OSError, EOFError) as err:
            raise DataError(f"{file}: not a readable CSV ({err})") from None
        check_columns(file, keys, mapping, have)
        frame = pd.read_csv(file, sep=sep, usecols=wanted, dtype=str, keep_default_na=False)
        first_line = 2  # line 1 is the header
    return long_form(frame, mapping), first_line


def check_columns(file: Path, keys: dict, mapping: FlatMapping, have: list[str]) -> None:
    """A mapped column missing from the file: name it, its mapping key, and what is there."""
    named = {
        **{k: v for k, v in keys.items() if v},
        **{f"values.{c}": c for c in mapping.values or {}},
    }
    for key, column in named.items():
        if column not in have:
            raise DataError(
                f"{file}: column {column!r} (mapping key {key!r}) not found; the file has "
                f"{have}; fix the mapping"
            )


def long_form(frame: pd.DataFrame, mapping: FlatMapping) -> pd.DataFrame:
    rows = np.arange(len(frame))
    if mapping.values is None:
        out = frame.rename(columns={mapping.code: _CODE})
        out[_VALUE] = frame[mapping.value] if mapping.value else ""
        out[_ROW] = rows
        return out
    parts = []
    for column, code in mapping.values.items():
        cell = frame[column]
        filled = (cell.notna() & (cell.astype(str) != "")).to_numpy()
        time = None if mapping.at_hour is not None else mapping.time
        part = frame.loc[filled, [c for c in (mapping.subject, time, mapping.unit) if c]]
        parts.append(part.assign(**{_CODE: code, _VALUE: cell[filled], _ROW: rows[filled]}))
    return pd.concat(parts).sort_values(_ROW, kind="stable").reset_index(drop=True)


def parse(raw: pd.DataFrame, mapping: FlatMapping) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Typed columns plus, per field, a mask of rows that did not parse."""
    subject = pd.to_numeric(raw[mapping.subject], errors="coerce")
    code_text = raw[_CODE].astype(str)
    bad = {
        "subject": (subject.isna() | (subject != np.floor(subject))).to_numpy(),
        "code": (code_text.str.strip() == "").to_numpy(),
    }
    text = raw[_VALUE]
    value = pd.to_numeric(text.replace("", np.nan), errors="coerce")
    bad["value"] = (text.notna() & (text.astype(str) != "") & value.isna()).to_numpy()
    if mapping.at_hour is not None:
        time = pd.Series(float(mapping.at_hour), index=raw.index)
        bad["time"] = np.zeros(len(raw), dtype=bool)
    elif mapping.time_unit is not None:
        number = pd.to_numeric(raw[mapping.time], errors="coerce")
        time = number * TIME_UNITS[mapping.time_unit]
        bad["time"] = ~np.isfinite(time.to_numpy(dtype=np.float64))
    else:
        stamp = pd.to_datetime(
            raw[mapping.time], format=mapping.time_format, utc=True, errors="coerce"
        )
        time = stamp.dt.tz_convert(None).astype("datetime64[us]")
        bad["time"] = time.isna().to_numpy()
    frame = pd.DataFrame(
        {
            "subject_id": subject.fillna(-1).to_numpy().astype(np.int64),
            "time": time.to_numpy(),
            "code": (mapping.code_prefix + code_text).to_numpy(dtype=object),
            "value": value.to_numpy(dtype=np.float64),
            "unit": raw[mapping.unit].to_numpy(dtype=object) if mapping.unit else None,
        }
    )
    return frame, bad


def drop_bad_rows(
    file: Path,
    frame: pd.DataFrame,
    rows: np.ndarray,
    bad: dict[str, np.ndarray],
    first_line: int,
    on_bad_row: OnBad,
    report: ReadReport,
) -> pd.DataFrame:
    """Raise naming the first bad row's line, or drop and count them (``bad_row:<field>``)."""
    for field_name, mask in bad.items():
        if not mask.any():
            continue
        row = int(rows[np.flatnonzero(mask)[0]])
        where = f"{file}:{row + first_line}" if first_line else f"{file}: row {row}"
        message = f"{where}: {field_name} does not parse ({int(mask.sum())} such rows)"
        if on_bad_row == "raise":
            raise DataError(message + "; fix the file or the mapping, or pass on_bad_row='warn'")
        report.add(f"bad_row:{field_name}", int(mask.sum()))
        if on_bad_row == "warn":
            import logging

            logging.getLogger("medseq.sources.flat_events").warning("%s; dropped", message)
    keep = ~np.any(np.column_stack(list(bad.values())), axis=1)
    return frame[keep].reset_index(drop=True)


def empty_units() -> pd.DataFrame:
    """The unit table of events that carry no unit column."""
    return pd.DataFrame(
        {
            "code": pd.Series(dtype=object),
            "unit": pd.Series(dtype=object),
            **{c: pd.Series(dtype=np.int64) for c in ("n_values", "n_converted", "n_dropped")},
        }
    )
