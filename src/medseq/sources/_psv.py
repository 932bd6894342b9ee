"""Vectorised parsing of many small wide ``|``-separated files (one per patient, one row per hour).

Why this module exists: the PhysioNet/CinC 2019 sepsis data are ~36,000 ``.psv`` files of
~39 rows and 41 columns; ``pandas.read_csv`` per file spends most of its time in per-call
overhead. As for the long PhysioNet 2012 files (:mod:`medseq.sources._longcsv`, whose
``RecordFile`` and ``apply_policy`` are reused here), the only Python loop is per *file*
(check the header, keep the body); the bodies are concatenated and parsed in one call, and
every row keeps its file index and line number so a garbled row is reported as ``file:line``.

Two paths, one result:

* the **fast path** parses all cells as float64 in one ``read_csv`` and then proves the parse
  was exact with three whole-buffer counts: ``|`` separators = 40 x lines (no row with a
  wrong field count, no blank line), the number of NaN cells = the number of literal ``NaN``
  tokens (no empty cell, no ``nan``/``NA`` spelling slipped through as missing), and every
  other cell finite (no ``inf``);
* if any check fails, or the float parse raises, the **strict path** re-parses the buffer
  line by line (field counts with numpy) and cell by cell (distinct strings against a
  regular expression, through ``pandas.factorize``), names the first bad ``file:line`` or
  follows ``on_bad_row``. Clean data never pays for it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medseq.schema import DataError, OnBad, ReadReport
from medseq.sources._longcsv import RecordFile, apply_policy, check_policy

__all__ = ["WideRows", "parse_wide_psv"]

_NUMBER_RE = r"^(?:NaN|[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)$"
_NEWLINE, _BAR = ord("\n"), ord("|")


@dataclass(frozen=True)
class WideRows:
    """All kept data rows of all files, in file order then line order.

    Attributes
    ----------
    file_index : ndarray of shape (N,), int64
        Position of the row's file in the list given to :func:`parse_wide_psv`.
    line : ndarray of shape (N,), int64
        1-based line number in that file (the header is line 1).
    values : ndarray of shape (N, C), float64
        The cells, NaN where the file says ``NaN``; every other cell is finite.
    """

    file_index: np.ndarray
    line: np.ndarray
    values: np.ndarray

    def take(self, mask: np.ndarray) -> WideRows:
        """The rows where ``mask`` is true."""
        return WideRows(self.file_index[mask], self.line[mask], self.values[mask])

    def where(self, row: int, files: Sequence[RecordFile]) -> str:
        """``file:line`` of one row, for messages."""
        return f"{files[self.file_index[row]].name}:{self.line[row]}"


def parse_wide_psv(
    files: Sequence[RecordFile],
    header: Sequence[str],
    *,
    on_bad_row: OnBad,
    report: ReadReport,
) -> WideRows:
    """Parse the data rows of ``files`` (each starting with the ``|``-joined ``header``).

    Parameters
    ----------
    files : sequence of RecordFile
    header : sequence of str
        The column names; every file's first line must be exactly ``"|".join(header)``.
    on_bad_row : {"raise", "warn", "skip"}
        A row with the wrong number of fields or a cell that is neither a number nor
        ``NaN`` raises a :class:`~medseq.schema.DataError` naming ``file:line``, or is
        dropped and counted under ``bad_row:field_count`` / ``bad_row:value``.
    report : ReadReport
        Receives ``blank_line`` and ``bad_row:<kind>`` counts.

    Raises
    ------
    DataError
        A missing or wrong header (always), or the first garbled row under ``"raise"``.
    """
    check_policy(on_bad_row)
    n_columns = len(header)
    buf, n_lines = _join_bodies(files, "|".join(header))
    file_index = np.repeat(np.arange(len(files), dtype=np.int64), n_lines)
    first_row = np.repeat(np.cumsum(n_lines) - n_lines, n_lines)
    line = np.arange(len(file_index), dtype=np.int64) - first_row + 2
    values = _fast_parse(buf, len(file_index), n_columns)
    if values is not None:
        return WideRows(file_index, line, values)
    rows = WideRows(file_index, line, np.empty((0, 0)))
    return _strict_parse(buf, rows, files, list(header), on_bad_row, report)


def _join_bodies(files: Sequence[RecordFile], header: str) -> tuple[bytes, np.ndarray]:
    """Check each header, return the concatenated bodies and each file's line count."""
    expected = header.encode()
    bodies: list[bytes] = []
    n_lines = np.zeros(len(files), dtype=np.int64)
    for i, record in enumerate(files):
        data = record.data.replace(b"\r\n", b"\n") if b"\r" in record.data else record.data
        end = data.find(b"\n")
        head = data if end < 0 else data[:end]
        if head != expected:
            got = head[:80].decode("utf-8", errors="replace")
            raise DataError(
                f"{record.name}:1: bad header: expected {header[:60]!r}..., got {got!r}"
            )
        body = b"" if end < 0 else data[end + 1 :]
        if body and not body.endswith(b"\n"):
            body += b"\n"
        bodies.append(body)
        n_lines[i] = body.count(b"\n")
    return b"".join(bodies), n_lines


def _read(buf: bytes, n_columns: int, dtype: type) -> pd.DataFrame:
    return pd.read_csv(
        io.BytesIO(buf),
        sep="|",
        header=None,
        names=list(range(n_columns)),
        dtype=dtype,
        na_values=["NaN"] if dtype is not str else None,
        keep_default_na=False,
        na_filter=dtype is not str,
        quoting=csv.QUOTE_NONE,
        engine="c",
        skip_blank_lines=False,
        encoding_errors="replace",
    )


def _fast_parse(buf: bytes, n_rows: int, n_columns: int) -> np.ndarray | None:
    """All cells as float64, or None when the buffer is not provably clean."""
    if not buf:
        return np.empty((0, n_columns))
    if buf.count(b"|") != (n_columns - 1) * n_rows or buf.startswith(b"\n") or b"\n\n" in buf:
        return None
    try:
        frame = _read(buf, n_columns, np.float64)
    except (ValueError, pd.errors.ParserError):
        return None
    values = frame.to_numpy(dtype=np.float64)
    if values.shape != (n_rows, n_columns):
        return None
    if int(np.isnan(values).sum()) != buf.count(b"NaN") or np.isinf(values).any():
        return None
    return values


def _strict_parse(
    buf: bytes,
    rows: WideRows,
    files: Sequence[RecordFile],
    header: list[str],
    on_bad_row: OnBad,
    report: ReadReport,
) -> WideRows:
    """Name the bad line or cell (or drop and count it), then parse what is left."""
    n_columns = len(header)
    arr = np.frombuffer(buf, dtype=np.uint8)
    ends = np.flatnonzero(arr == _NEWLINE)
    begins = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    bars = np.bincount(np.searchsorted(ends, np.flatnonzero(arr == _BAR)), minlength=len(ends))
    blank = ends == begins
    report.add("blank_line", int(blank.sum()))

    def describe_line(kind: str, row: int) -> str:
        raw = buf[begins[row] : ends[row]].decode("utf-8", errors="replace")
        return (
            f"{rows.where(row, files)}: bad row: expected {n_columns} '|'-separated fields, "
            f"got {bars[row] + 1}: {raw[:80]!r}"
        )

    bad_count = (bars != n_columns - 1) & ~blank
    drop = blank | apply_policy({"field_count": bad_count}, describe_line, on_bad_row, report)
    keep = ~drop
    if drop.any():
        buf = arr[np.repeat(keep, ends - begins + 1)].tobytes()
    rows = WideRows(rows.file_index[keep], rows.line[keep], rows.values)
    if not buf:
        return WideRows(rows.file_index, rows.line, np.empty((0, n_columns)))
    frame = _read(buf, n_columns, str)
    values = np.empty((len(frame), n_columns))
    bad_cell = np.full(len(frame), -1, dtype=np.int64)
    for j in range(n_columns):
        codes, uniques = pd.factorize(frame[j])
        strings = pd.Series(uniques, dtype=str)
        good = strings.str.match(_NUMBER_RE).to_numpy(dtype=bool)
        numbers = pd.to_numeric(strings.where(good), errors="coerce").to_numpy(np.float64)
        good = good & ~np.isinf(numbers)
        values[:, j] = numbers[codes]
        bad_here = ~good[codes] & (bad_cell < 0)
        bad_cell[bad_here] = j

    def describe_cell(kind: str, row: int) -> str:
        j = int(bad_cell[row])
        got = frame[j].iat[row]
        return (
            f"{rows.where(row, files)}: bad value in column {j + 1} ({header[j]}): expected "
            f"a finite number or 'NaN', got {got!r}"
        )

    dropped = apply_policy({"value": bad_cell >= 0}, describe_cell, on_bad_row, report)
    return WideRows(rows.file_index, rows.line, values).take(~dropped)
