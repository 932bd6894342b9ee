"""A flat CSV or parquet file of events, read through a column mapping given in TOML.

The long format most exports can produce: one row per event with a subject, a time, a
code, and optionally a value and its unit. Which column is which is a
:class:`FlatMapping`, typically a TOML section::

    [data.events]
    path = "events.csv.gz"
    subject = "stay_id"
    time = "charttime"          # ISO 8601 date-times (hour 0: first event, or anchor)
    code = "item"
    value = "valuenum"          # optional: no value column means code-only events
    unit = "valueuom"           # optional: values are converted to one unit per code
    code_prefix = "eicu|"       # optional: a code system prefix, as FHIR codes carry
    # time_unit = "minutes"     # instead: times are numbers since each subject's hour 0

Errors name the file, the line (CSV, header = line 1) or row (parquet) and the column:
a missing column lists the ones there are; an unparseable time, value or subject raises
under ``on_bad_row="raise"`` or is dropped and counted (``bad_row:<field>``). Units are
checked as in :func:`medseq.sources._units.harmonise`.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medseq.schema import DataError, OnBad, ReadReport, check_known_keys, validate_events
from medseq.sources._longcsv import check_policy
from medseq.sources._units import harmonise
from medseq.sources.meds import origins

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["TIME_UNITS", "FlatEventSet", "FlatMapping", "read"]

logger = logging.getLogger(__name__)

#: hours per unit of a numeric (relative) time column
TIME_UNITS = {"seconds": 1 / 3600, "minutes": 1 / 60, "hours": 1.0, "days": 24.0}


@dataclass(frozen=True)
class FlatMapping:
    """Which column of a flat event file is which (see the module doc for an example).

    Parameters
    ----------
    subject, time, code : str
        Column names; subject ids must be integers.
    value, unit : str, optional
        Column names; without ``value`` every event is code-only.
    code_prefix : str, default=""
        Put before every code (e.g. ``"http://loinc.org|"``).
    time_unit : {"seconds", "minutes", "hours", "days"}, optional
        Set when times are numbers since each subject's hour 0; unset for date-times.
    time_format : str, default="ISO8601"
        pandas ``to_datetime`` format of date-times.
    anchor_prefix : str, optional
        Date-times: hour 0 is the subject's first event whose code (with prefix) starts
        with this; default the first event.
    path : str, optional
        The file, when the mapping comes from a config.
    """

    subject: str = "subject_id"
    time: str = "time"
    code: str = "code"
    value: str | None = "value"
    unit: str | None = None
    code_prefix: str = ""
    time_unit: str | None = None
    time_format: str = "ISO8601"
    anchor_prefix: str | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        if self.time_unit is not None and self.time_unit not in TIME_UNITS:
            raise ValueError(
                f"FlatMapping.time_unit must be one of {sorted(TIME_UNITS)} or unset, "
                f"got {self.time_unit!r}"
            )

    @classmethod
    def from_dict(cls, given: dict[str, Any], where: str = "flat event mapping") -> FlatMapping:
        """Build from a config dict; unknown keys raise, naming the allowed ones."""
        check_known_keys(where, given, [f.name for f in fields(cls)])
        return cls(**given)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], section: str = "data.events") -> FlatMapping:
        """Read the mapping from a (dotted) section of a TOML file."""
        with open(path, "rb") as handle:
            node: Any = tomllib.load(handle)
        for key in section.split("."):
            if not isinstance(node, dict) or key not in node:
                raise ValueError(f"{path}: no [{section}] section (missing {key!r})")
            node = node[key]
        return cls.from_dict(node, where=f"{path} [{section}]")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class FlatEventSet:
    """A flat event file, read.

    Attributes
    ----------
    events : DataFrame
        The canonical ``subject_id, time, code, value``, sorted by subject and time (file
        order within one time).
    units : DataFrame
        One row per numeric code (``code, unit, n_values, n_converted, n_dropped``); empty
        without a unit column.
    origin : Series or None
        ``datetime64[us]`` of hour 0 per subject for date-times; None for relative times.
    report : ReadReport
    """

    events: pd.DataFrame
    units: pd.DataFrame
    origin: pd.Series | None
    report: ReadReport

    def to_meds(self, path: str | os.PathLike[str], **kwargs: Any) -> Path:
        """Write as a MEDS folder; needs absolute times (an ``origin``)."""
        from medseq.sources import meds

        if self.origin is None:
            raise ValueError(
                "relative times (time_unit) have no absolute origin; MEDS needs date-times"
            )
        return meds.write_events(self.events, self.origin, Path(path), **kwargs)


def read(
    path: str | os.PathLike[str] | None,
    mapping: FlatMapping,
    *,
    on_bad_row: OnBad = "raise",
    on_unit_mismatch: OnBad = "warn",
    units: dict[str, str] | None = None,
) -> FlatEventSet:
    """Read a flat CSV (``.csv``, ``.csv.gz``, ``.tsv``) or parquet file of events.

    Parameters
    ----------
    path : path-like or None
        The file; None takes ``mapping.path``.
    mapping : FlatMapping
    on_bad_row : {"raise", "warn", "skip"}, default="raise"
        A row with an unparseable subject, time or value, or an empty code.
    on_unit_mismatch : {"raise", "warn", "skip"}, default="warn"
    units : dict of code to unit, optional
        Target unit per code (codes with the prefix); default each code's most frequent.

    Raises
    ------
    DataError
        A missing column (named, with those present), or a bad row under "raise".
    """
    check_policy(on_bad_row)
    check_policy(on_unit_mismatch)
    if path is None and mapping.path is None:
        raise ValueError("no file: pass path or set `path` in the mapping")
    file = Path(path if path is not None else str(mapping.path))
    report = ReadReport(source=str(file))
    raw, line_offset = _load(file, mapping)
    frame, bad = _parse(raw, mapping)
    _bad_rows(file, frame, bad, line_offset, on_bad_row, report)
    keep = (
        ~np.any(np.column_stack(list(bad.values())), axis=1) if bad else np.ones(len(frame), bool)
    )
    frame = frame[keep].reset_index(drop=True)
    unit_table = _empty_units()
    if mapping.unit is not None:
        values, ok, unit_table = harmonise(
            frame["code"].to_numpy(dtype=object),
            frame["value"].to_numpy(dtype=np.float64),
            raw.loc[keep, mapping.unit].to_numpy(dtype=object),
            report,
            targets=units,
            on_mismatch=on_unit_mismatch,
            where=str(file),
        )
        frame = frame.assign(value=values)[ok]
    events, origin = _hours(frame, mapping, str(file))
    report.n_subjects = int(events["subject_id"].nunique())
    report.n_events = len(events)
    logger.info("%s", report.summary())
    return FlatEventSet(events=events, units=unit_table, origin=origin, report=report)


def _load(file: Path, mapping: FlatMapping) -> tuple[pd.DataFrame, int]:
    """The mapped columns as strings (CSV) or as stored (parquet); the first data line."""
    wanted = [
        c for c in (mapping.subject, mapping.time, mapping.code, mapping.value, mapping.unit) if c
    ]
    name = file.name.lower()
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        have = pq.read_schema(file).names
        _check_columns(file, mapping, have)
        return pq.read_table(file, columns=wanted).to_pandas(), 0
    sep = "\t" if name.endswith((".tsv", ".tsv.gz")) else ","
    try:
        have = list(pd.read_csv(file, nrows=0, sep=sep).columns)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{file}: not a readable CSV ({err})") from None
    _check_columns(file, mapping, have)
    frame = pd.read_csv(file, sep=sep, usecols=wanted, dtype=str, keep_default_na=False)
    return frame, 2  # line 1 is the header


def _check_columns(file: Path, mapping: FlatMapping, have: list[str]) -> None:
    for key in ("subject", "time", "code", "value", "unit"):
        column = getattr(mapping, key)
        if column is not None and column not in have:
            raise DataError(
                f"{file}: column {column!r} (mapping key {key!r}) not found; the file has "
                f"{have}; fix the mapping"
            )


def _parse(raw: pd.DataFrame, mapping: FlatMapping) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Typed columns plus, per field, a mask of rows that did not parse."""
    subject_text = raw[mapping.subject]
    subject = pd.to_numeric(subject_text, errors="coerce")
    bad_subject = subject.isna() | (subject != np.floor(subject))
    code_text = raw[mapping.code].astype(str)
    bad = {"subject": bad_subject.to_numpy(), "code": (code_text.str.strip() == "").to_numpy()}
    if mapping.value is not None:
        value = pd.to_numeric(raw[mapping.value].replace("", np.nan), errors="coerce")
        filled = raw[mapping.value].notna() & (raw[mapping.value].astype(str) != "")
        bad["value"] = (filled & value.isna()).to_numpy()
    else:
        value = pd.Series(np.nan, index=raw.index)
    if mapping.time_unit is not None:
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
        }
    )
    return frame, bad


def _bad_rows(
    file: Path,
    frame: pd.DataFrame,
    bad: dict[str, np.ndarray],
    line_offset: int,
    on_bad_row: OnBad,
    report: ReadReport,
) -> None:
    for field_name, mask in bad.items():
        if not mask.any():
            continue
        row = int(np.flatnonzero(mask)[0])
        where = f"{file}:{row + line_offset}" if line_offset else f"{file}: row {row}"
        message = f"{where}: {field_name} does not parse ({int(mask.sum())} such rows)"
        if on_bad_row == "raise":
            raise DataError(message + "; fix the file or the mapping, or pass on_bad_row='warn'")
        report.add(f"bad_row:{field_name}", int(mask.sum()))
        if on_bad_row == "warn":
            logger.warning("%s; dropped", message)


def _hours(
    frame: pd.DataFrame, mapping: FlatMapping, where: str
) -> tuple[pd.DataFrame, pd.Series | None]:
    origin = None
    if mapping.time_unit is None:
        origin = origins(frame, mapping.anchor_prefix or "\x00")
        hour0 = origin.reindex(frame["subject_id"]).to_numpy()
        frame = frame.assign(time=(frame["time"].to_numpy() - hour0) / np.timedelta64(1, "h"))
    events = frame.sort_values(["subject_id", "time"], kind="stable")
    return validate_events(events, where=where), origin


def _empty_units() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "code": pd.Series(dtype=object),
            "unit": pd.Series(dtype=object),
            **{c: pd.Series(dtype=np.int64) for c in ("n_values", "n_converted", "n_dropped")},
        }
    )
