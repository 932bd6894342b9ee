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

A *wide* table, one column per code (e.g. eICU's ``vitalAperiodic``), maps its columns to
codes instead of naming a code and a value column (one event per non-empty cell)::

    [[data.events]]
    path = "vitalAperiodic.csv.gz"
    subject = "patientunitstayid"
    time = "observationoffset"
    time_unit = "minutes"
    values = { noninvasivesystolic = "NBP_SYS", noninvasivediastolic = "NBP_DIA" }

Several tables (``[[data.events]]``, an array of tables) read into one event table with
:func:`read_tables`; they must agree on relative (``time_unit``) or absolute times.

Errors name the file, the line (CSV, header = line 1) or row (parquet) and the column:
a missing column lists the ones there are; an unparseable time, value or subject raises
under ``on_bad_row="raise"`` or is dropped and counted (``bad_row:<field>``). Units are
checked as in :func:`medseq.sources._units.harmonise`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medseq.schema import OnBad, ReadReport, check_known_keys, validate_events
from medseq.sources import _flat_parse
from medseq.sources._flat_parse import TIME_UNITS
from medseq.sources._longcsv import check_policy
from medseq.sources._units import harmonise
from medseq.sources.meds import origins

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["TIME_UNITS", "FlatEventSet", "FlatMapping", "read", "read_tables"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlatMapping:
    """Which column of a flat event file is which (see the module doc for an example).

    Parameters
    ----------
    subject, time : str
        Column names; subject ids must be integers.
    code : str
        Column name of the codes (a long table).
    value, unit : str, optional
        Column names; without ``value`` every event is code-only.
    values : dict of column to code, optional
        A wide table: each listed column is one code, each non-empty cell one event;
        ``code`` and ``value`` are then unused (and must not be given in a config).
    code_prefix : str, default=""
        Put before every code (e.g. ``"http://loinc.org|"``).
    time_unit : {"seconds", "minutes", "hours", "days"}, optional
        Set when times are numbers since each subject's hour 0; unset for date-times.
    time_format : str, default="ISO8601"
        pandas ``to_datetime`` format of date-times.
    anchor_prefix : str, optional
        Date-times: hour 0 is the subject's first event whose code (with prefix) starts
        with this; default the first event.
    at_hour : float, optional
        Relative times only: every row of the table is at this hour of the subject's
        clock and ``time`` is not read. For tables of per-stay facts that carry no time
        column but are known at a fixed point (e.g. sex, unit or hospital at admission,
        hour 0), so they can anchor a prediction time or name a subject's site.
    path : str, optional
        The file, when the mapping comes from a config.
    """

    subject: str = "subject_id"
    time: str = "time"
    code: str | None = "code"
    value: str | None = None
    unit: str | None = None
    values: dict[str, str] | None = None
    code_prefix: str = ""
    time_unit: str | None = None
    time_format: str = "ISO8601"
    anchor_prefix: str | None = None
    at_hour: float | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        if self.values is not None and (
            not isinstance(self.values, dict)
            or not self.values
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in self.values.items())
        ):
            raise ValueError(
                f"FlatMapping.values must map column names to codes, got {self.values!r}"
            )
        if self.values is None and not self.code:
            raise ValueError("FlatMapping needs a code column (code) or a wide mapping (values)")
        if self.time_unit is not None and self.time_unit not in TIME_UNITS:
            raise ValueError(
                f"FlatMapping.time_unit must be one of {sorted(TIME_UNITS)} or unset, "
                f"got {self.time_unit!r}"
            )
        if self.at_hour is not None:
            if self.time_unit is None:
                raise ValueError(
                    "FlatMapping.at_hour places rows on a relative clock; set time_unit too"
                )
            if isinstance(self.at_hour, bool) or not isinstance(self.at_hour, int | float):
                raise ValueError(f"FlatMapping.at_hour must be a number, got {self.at_hour!r}")

    @classmethod
    def from_dict(cls, given: dict[str, Any], where: str = "flat event mapping") -> FlatMapping:
        """Build from a config dict; unknown keys raise, naming the allowed ones."""
        check_known_keys(where, given, [f.name for f in fields(cls)])
        if "values" in given:
            both = sorted({"code", "value"} & set(given))
            if both:
                raise ValueError(f"{where}: a wide mapping (values) names its codes; remove {both}")
            return cls(**{**given, "code": None, "value": None})
        return cls(**given)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], section: str = "data.events") -> FlatMapping:
        """Read the mapping from a (dotted) section of a TOML file."""
        node = _section(path, section)
        if isinstance(node, list):
            raise ValueError(f"{path}: [[{section}]] holds several tables; use list_from_toml")
        return cls.from_dict(node, where=f"{path} [{section}]")

    @classmethod
    def list_from_toml(
        cls, path: str | os.PathLike[str], section: str = "data.events"
    ) -> list[FlatMapping]:
        """Every mapping of ``[[section]]`` (an array of tables), or the one of ``[section]``."""
        node = _section(path, section)
        nodes = node if isinstance(node, list) else [node]
        return [cls.from_dict(n, where=f"{path} [{section}] #{i}") for i, n in enumerate(nodes)]

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

    def to_meds(
        self,
        path: str | os.PathLike[str],
        *,
        splits: Mapping[int, str] | None = None,
        dataset_name: str = "flat_events",
        subjects_per_shard: int | None = None,
        hour0: str | None = None,
    ) -> Path:
        """Write as a MEDS folder (the hub every reader can export to).

        MEDS keeps date-times. Relative times (``time_unit``) have none, so ``hour0`` gives
        the date-time of every subject's hour 0 (exports such as eICU shift or hide real
        dates, so a fixed date keeps every interval and invents no calendar fact).
        """
        from medseq.sources import meds

        origin = self.origin
        if origin is None:
            if hour0 is None:
                raise ValueError(
                    "relative times (time_unit) have no absolute origin and MEDS needs "
                    "date-times: pass hour0 (e.g. '2000-01-01') for every subject's hour 0"
                )
            subjects = np.unique(self.events["subject_id"].to_numpy())
            stamp = np.datetime64(pd.Timestamp(hour0).tz_localize(None), "us")
            origin = pd.Series(np.full(len(subjects), stamp), index=subjects)
        return meds.write_events(
            self.events,
            origin,
            Path(path),
            splits=splits,
            dataset_name=dataset_name,
            subjects_per_shard=subjects_per_shard,
        )


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
    if path is not None:
        mapping = replace(mapping, path=str(path))
    return read_tables(
        [mapping], on_bad_row=on_bad_row, on_unit_mismatch=on_unit_mismatch, units=units
    )


def read_tables(
    mappings: list[FlatMapping],
    *,
    root: str | os.PathLike[str] | None = None,
    on_bad_row: OnBad = "raise",
    on_unit_mismatch: OnBad = "warn",
    units: dict[str, str] | None = None,
) -> FlatEventSet:
    """Read several flat files (each with its mapping and ``path``) into one event table.

    Parameters
    ----------
    mappings : list of FlatMapping
        Each with its ``path``; all with ``time_unit`` (relative times) or all without.
    root : path-like, optional
        Folder that relative ``path``s are in (e.g. the dataset folder).
    on_bad_row, on_unit_mismatch, units
        As in :func:`read`.
    """
    check_policy(on_bad_row)
    check_policy(on_unit_mismatch)
    if not mappings:
        raise ValueError("read_tables needs at least one mapping")
    relative = {m.time_unit is not None for m in mappings}
    if len(relative) > 1:
        raise ValueError("mix of relative (time_unit) and absolute times; use one kind")
    files = [_file_of(m, root) for m in mappings]
    report = ReadReport(source=", ".join(str(f) for f in files))
    frames = [
        _read_one(file, m, on_bad_row, report) for file, m in zip(files, mappings, strict=True)
    ]
    return events_from_parsed(
        frames, mappings, report, on_unit_mismatch=on_unit_mismatch, units=units
    )


def events_from_parsed(
    frames: list[pd.DataFrame],
    mappings: list[FlatMapping],
    report: ReadReport,
    *,
    on_unit_mismatch: OnBad = "warn",
    units: dict[str, str] | None = None,
) -> FlatEventSet:
    """Parsed tables (:func:`medseq.sources._flat_parse.parse`, bad rows already dropped),
    one per mapping, as one event table: units harmonised, times in hours.

    The tail of :func:`read_tables`, shared with the REST service, which parses a request's
    rows with the same mapping (:mod:`medseq.datasets.flat_tables_serving`), so a patient's
    rows become the same events whether they come from a file or a request.
    """
    relative = {m.time_unit is not None for m in mappings}
    if len(relative) > 1:
        raise ValueError("mix of relative (time_unit) and absolute times; use one kind")
    frame = pd.concat(frames, ignore_index=True)
    unit_table = _flat_parse.empty_units()
    if any(m.unit for m in mappings):
        values, ok, unit_table = harmonise(
            frame["code"].to_numpy(dtype=object),
            frame["value"].to_numpy(dtype=np.float64),
            frame["unit"].to_numpy(dtype=object),
            report,
            targets=units,
            on_mismatch=on_unit_mismatch,
            where=report.source,
        )
        frame = frame.assign(value=values)[ok]
    anchor = next((m.anchor_prefix for m in mappings if m.anchor_prefix), None)
    events, origin = _hours(frame.drop(columns="unit"), relative.pop(), anchor, report.source)
    report.n_subjects = int(events["subject_id"].nunique())
    report.n_events = len(events)
    logger.info("%s", report.summary())
    return FlatEventSet(events=events, units=unit_table, origin=origin, report=report)


def _file_of(mapping: FlatMapping, root: str | os.PathLike[str] | None) -> Path:
    if mapping.path is None:
        raise ValueError("no file: pass path or set `path` in the mapping")
    file = Path(mapping.path)
    return file if root is None or file.is_absolute() else Path(root) / file


def _read_one(
    file: Path, mapping: FlatMapping, on_bad_row: OnBad, report: ReadReport
) -> pd.DataFrame:
    raw, first_line = _flat_parse.load(file, mapping)
    frame, bad = _flat_parse.parse(raw, mapping)
    rows = raw["__row__"].to_numpy()
    return _flat_parse.drop_bad_rows(file, frame, rows, bad, first_line, on_bad_row, report)


def _hours(
    frame: pd.DataFrame, relative: bool, anchor: str | None, where: str
) -> tuple[pd.DataFrame, pd.Series | None]:
    origin = None
    if not relative:
        origin = origins(frame, anchor or "\x00")
        hour0 = origin.reindex(frame["subject_id"]).to_numpy()
        frame = frame.assign(time=(frame["time"].to_numpy() - hour0) / np.timedelta64(1, "h"))
    events = frame.sort_values(["subject_id", "time"], kind="stable")
    return validate_events(events, where=where), origin


def _section(path: str | os.PathLike[str], section: str) -> Any:
    with open(path, "rb") as handle:
        node: Any = tomllib.load(handle)
    for key in section.split("."):
        if not isinstance(node, dict) or key not in node:
            raise ValueError(f"{path}: no [{section}] section (missing {key!r})")
        node = node[key]
    return node


def mapping_state(raw: Mapping[str, Any], read: FlatEventSet) -> dict[str, Any]:
    """What a request needs to read rows as the mapping file ``raw`` (its parsed TOML) did:
    the mapping without its ``root`` (a path of the training machine) and the unit chosen
    for each numeric code (so a request's values are converted to the units the model
    was trained on, not to its own most frequent unit). Plain JSON, kept in the bundle."""
    chosen = dict(zip(read.units["code"].astype(str), read.units["unit"].astype(str), strict=True))
    return {
        "mapping": {k: v for k, v in raw.items() if k != "root"},
        "units": {**chosen, **(raw.get("units") or {})},
    }
