"""Vectorised parsing of many small ``Time,Parameter,Value`` CSV files (one per stay).

Why this module exists: a loop per *row* over the ~3.5 million rows of PhysioNet 2012
sets A and B takes minutes, and ``pandas.read_csv`` per file spends most of its time in
per-call overhead. Here the only Python loop is per *file* (check the header, keep the
body); the bodies are concatenated and parsed by one ``pandas.read_csv`` call. Each row
keeps the index of its file and its line number, so that any garbled row is reported as
``file:line`` although it was parsed in bulk.

Time and value strings are parsed through :func:`pandas.factorize`: a set holds a few
thousand distinct times and values among millions of rows, so the strict checks (a
regular expression per distinct string) cost almost nothing.

Garbled rows (wrong field count, bad time, bad parameter name, non-numeric value) follow
the caller's ``on_bad_row`` policy; blank lines are skipped and counted.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medseq.schema import DataError, OnBad, ReadReport

logger = logging.getLogger(__name__)

COLUMNS: tuple[str, str, str] = ("Time", "Parameter", "Value")
HEADER = ",".join(COLUMNS)
ON_BAD_ROW = ("raise", "warn", "skip")

_TIME_RE = r"^(\d+):([0-5]\d)$"
_NUMBER_RE = r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$"
_NAME_RE = r"^(?:[A-Za-z][A-Za-z0-9_\-]*)?$"  # empty is a dataset quirk, not garbled
_NEWLINE, _COMMA = ord("\n"), ord(",")
_N_WHERE = 3  # locations quoted in a warning


@dataclass(frozen=True)
class RecordFile:
    """One record's bytes and the name used for it in messages (e.g. ``set-a/132539.txt``)."""

    name: str
    data: bytes


@dataclass(frozen=True)
class LongRows:
    """All kept data rows of all files, in file order then line order.

    Attributes
    ----------
    file_index : ndarray of shape (N,), int64
        Position of the row's file in the list given to :func:`parse_long_csv`.
    line : ndarray of shape (N,), int64
        1-based line number in that file (the header is line 1).
    time_hours : ndarray of shape (N,), float64
        ``hh:mm`` as hours.
    name : pandas.Categorical of shape (N,)
        The parameter name (may be the empty string).
    value : ndarray of shape (N,), float64
        Finite numbers.
    """

    file_index: np.ndarray
    line: np.ndarray
    time_hours: np.ndarray
    name: pd.Categorical
    value: np.ndarray

    def take(self, mask: np.ndarray) -> LongRows:
        """The rows where ``mask`` is true."""
        return LongRows(
            self.file_index[mask],
            self.line[mask],
            self.time_hours[mask],
            self.name[mask],
            self.value[mask],
        )

    def where(self, row: int, files: Sequence[RecordFile]) -> str:
        """``file:line`` of one row, for messages."""
        return f"{files[self.file_index[row]].name}:{self.line[row]}"


def check_policy(on_bad_row: str) -> None:
    """Reject an unknown ``on_bad_row`` with the allowed values."""
    if on_bad_row not in ON_BAD_ROW:
        raise ValueError(f"on_bad_row must be one of {ON_BAD_ROW}, got {on_bad_row!r}")


def parse_long_csv(
    files: Sequence[RecordFile], *, on_bad_row: OnBad, report: ReadReport
) -> LongRows:
    """Parse the data rows of ``files`` in one pass.

    Parameters
    ----------
    files : sequence of RecordFile
        Each must start with the header line ``Time,Parameter,Value``.
    on_bad_row : {"raise", "warn", "skip"}
        What to do with a garbled row: raise a :class:`~medseq.schema.DataError`
        naming ``file:line``, or drop it and count it under ``bad_row:<kind>``
        (``warn`` also logs a warning).
    report : ReadReport
        Receives ``blank_line`` and ``bad_row:<kind>`` counts.

    Raises
    ------
    DataError
        On a missing or wrong header (always), or on the first garbled row when
        ``on_bad_row="raise"``.
    """
    check_policy(on_bad_row)
    buf, n_lines = _join_bodies(files)
    file_index = np.repeat(np.arange(len(files), dtype=np.int64), n_lines)
    first_row = np.repeat(np.cumsum(n_lines) - n_lines, n_lines)
    line = np.arange(len(file_index), dtype=np.int64) - first_row + 2
    buf, keep = _drop_bad_lines(buf, file_index, line, files, on_bad_row, report)
    file_index, line = file_index[keep], line[keep]
    frame = _read_frame(buf, len(file_index))
    time_hours = _parse_times(frame["Time"])
    value = _parse_values(frame["Value"])
    name = _parse_names(frame["Parameter"])
    rows = LongRows(file_index, line, time_hours, name, value)
    bad = {
        "time": np.isnan(time_hours),
        "parameter": np.asarray(pd.isna(name)),
        "value": ~np.isfinite(value),
    }
    garbled = apply_policy(bad, _field_describer(rows, frame, files), on_bad_row, report)
    return rows.take(~garbled) if garbled.any() else rows


_FIELD = {"time": "Time", "parameter": "Parameter", "value": "Value"}
_EXPECTED = {
    "time": "'hh:mm' with minutes 00-59",
    "parameter": "a name of letters, digits, '_' or '-'",
    "value": "a finite number",
}


def _field_describer(
    rows: LongRows, frame: pd.DataFrame, files: Sequence[RecordFile]
) -> Callable[[str, int], str]:
    """``describe(kind, row)`` -> "file:line: bad <kind>: expected ..., got '<field>'"."""

    def describe(kind: str, row: int) -> str:
        got = frame[_FIELD[kind]].iat[row]
        return f"{rows.where(row, files)}: bad {kind}: expected {_EXPECTED[kind]}, got {got!r}"

    return describe


def apply_policy(
    bad: dict[str, np.ndarray],
    describe: Callable[[str, int], str],
    on_bad_row: OnBad,
    report: ReadReport,
) -> np.ndarray:
    """Raise on, or count (and log), the rows flagged in ``bad``.

    Each row is charged to the first kind (in ``bad``'s order) that flags it, so the
    counts add up to the number of dropped rows. Returns the mask of dropped rows.
    """
    kinds = list(bad)
    first_kind = np.full(len(bad[kinds[0]]), -1, dtype=np.int8)
    for k in reversed(range(len(kinds))):  # the first kind in order wins
        first_kind[bad[kinds[k]]] = k
    dropped = first_kind >= 0
    if not dropped.any():
        return dropped
    if on_bad_row == "raise":
        row = int(np.flatnonzero(dropped)[0])
        raise DataError(
            f"{describe(kinds[first_kind[row]], row)}; pass on_bad_row='skip' or 'warn' "
            "to drop such rows (they are counted in the report)"
        )
    for k, kind in enumerate(kinds):
        rows = np.flatnonzero(first_kind == k)
        if len(rows) == 0:
            continue
        report.add(f"bad_row:{kind}", len(rows))
        if on_bad_row == "warn":
            quoted = "; ".join(describe(kind, int(r)) for r in rows[:_N_WHERE])
            logger.warning("dropped %d garbled rows (bad %s), e.g. %s", len(rows), kind, quoted)
    return dropped


def _join_bodies(files: Sequence[RecordFile]) -> tuple[bytes, np.ndarray]:
    """Check each header, return the concatenated bodies and each file's line count."""
    bodies: list[bytes] = []
    n_lines = np.zeros(len(files), dtype=np.int64)
    for i, record in enumerate(files):
        data = record.data.replace(b"\r\n", b"\n") if b"\r" in record.data else record.data
        end = data.find(b"\n")
        head = data if end < 0 else data[:end]
        if head != HEADER.encode():
            got = head[:80].decode("utf-8", errors="replace")
            raise DataError(f"{record.name}:1: bad header: expected {HEADER!r}, got {got!r}")
        body = b"" if end < 0 else data[end + 1 :]
        if body and not body.endswith(b"\n"):
            body += b"\n"
        bodies.append(body)
        n_lines[i] = body.count(b"\n")
    return b"".join(bodies), n_lines


def _drop_bad_lines(
    buf: bytes,
    file_index: np.ndarray,
    line: np.ndarray,
    files: Sequence[RecordFile],
    on_bad_row: OnBad,
    report: ReadReport,
) -> tuple[bytes, np.ndarray]:
    """Remove blank lines (counted) and lines without exactly 3 fields (policy)."""
    arr = np.frombuffer(buf, dtype=np.uint8)
    ends = np.flatnonzero(arr == _NEWLINE)
    begins = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    line_of_comma = np.searchsorted(ends, np.flatnonzero(arr == _COMMA))
    commas = np.bincount(line_of_comma, minlength=len(ends))
    blank = ends == begins
    report.add("blank_line", int(blank.sum()))

    def describe(kind: str, row: int) -> str:
        raw = buf[begins[row] : ends[row]].decode("utf-8", errors="replace")
        return (
            f"{files[file_index[row]].name}:{line[row]}: bad row: expected 3 comma-separated "
            f"fields {HEADER!r}, got {commas[row] + 1}: {raw[:80]!r}"
        )

    drop = blank | apply_policy(
        {"field_count": (commas != 2) & ~blank}, describe, on_bad_row, report
    )
    if not drop.any():
        return buf, ~drop
    byte_keep = np.repeat(~drop, ends - begins + 1)
    return arr[byte_keep].tobytes(), ~drop


def _read_frame(buf: bytes, n_rows: int) -> pd.DataFrame:
    """One ``read_csv`` over all rows, every field kept as its literal string."""
    if not buf:
        return pd.DataFrame({c: pd.Series([], dtype=str) for c in COLUMNS})
    frame = pd.read_csv(
        io.BytesIO(buf),
        header=None,
        names=list(COLUMNS),
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        quoting=csv.QUOTE_NONE,
        engine="c",
        encoding_errors="replace",
    )
    if len(frame) != n_rows:  # every line has exactly 3 fields here, so this cannot happen
        raise DataError(f"internal: parsed {len(frame)} rows from {n_rows} lines")
    return frame


def _parse_times(column: pd.Series) -> np.ndarray:
    """``hh:mm`` -> float hours; NaN where the string is not of that form."""
    codes, uniques = pd.factorize(column)
    parts = pd.Series(uniques, dtype=str).str.extract(_TIME_RE)
    hours = pd.to_numeric(parts[0]) + pd.to_numeric(parts[1]) / 60.0
    return hours.to_numpy(dtype=np.float64, na_value=np.nan)[codes]


def _parse_values(column: pd.Series) -> np.ndarray:
    """Decimal strings -> float64; NaN where not a plain number (so 'nan', '1_0' are bad)."""
    codes, uniques = pd.factorize(column)
    strings = pd.Series(uniques, dtype=str)
    numbers = pd.to_numeric(strings.where(strings.str.match(_NUMBER_RE)), errors="coerce")
    return numbers.to_numpy(dtype=np.float64, na_value=np.nan)[codes]


def _parse_names(column: pd.Series) -> pd.Categorical:
    """Parameter names as a categorical; garbled names become NaN (missing)."""
    codes, uniques = pd.factorize(column)
    strings = pd.Series(uniques, dtype=str)
    good = strings.str.match(_NAME_RE).to_numpy(dtype=bool)
    codes = np.where(good[codes], codes, -1) if not good.all() else codes
    return pd.Categorical.from_codes(codes, categories=pd.Index(uniques, dtype=str))
