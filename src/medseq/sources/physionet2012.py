"""PhysioNet/CinC Challenge 2012 (in-hospital mortality of ICU patients): read and download.

One set (A, B or C) is a folder ``set-a/`` of ``<RecordID>.txt`` files, one ICU stay each,
or the ``set-a.tar.gz`` that PhysioNet publishes, plus ``Outcomes-a.txt``. See
``shared/data/physionet2012/SOURCE.md`` and https://physionet.org/content/challenge-2012/.

:func:`read` returns the stays as a long event table (see ``docs/architecture.md`` §1).
It is vectorised (one ``read_csv`` for all rows, see :mod:`medseq.sources._longcsv`) and
strict: a garbled *file* always raises :class:`~medseq.schema.DataError` naming it, a
garbled *row* follows ``on_bad_row``. Known quirks are tolerated and counted in
``PhysioNet2012Set.report.counts`` under these keys:

Rows of the files that end up in neither ``events`` nor ``static`` (each is counted once,
under the first of these reasons that applies, in this order):

``blank_line``
    empty lines.
``bad_row:<kind>`` (``field_count``, ``time``, ``parameter``, ``value``)
    garbled rows dropped under ``on_bad_row="warn"`` or ``"skip"``.
``empty_parameter``
    rows with an empty name, e.g. ``10:45,,1.9`` (2403 of them in the original set C).
``unknown_parameter``
    well-formed names that are none of the 37 variables nor the descriptors.
``implausible_value:<variable>``
    values outside :data:`VALID_RANGES` (physiologically impossible, e.g. a weight of
    0 kg, a temperature of -17.8 °C, a pH of 735): dropped, never clipped.
``duplicate_time_merged``
    rows folded into an earlier row of the same subject, time and variable: the merged
    value is the mean for levels and the sum for ``Urine`` (a volume: two outputs
    charted in the same minute add up). The merged row keeps the first one's place.
``duplicate_descriptor``
    a second ``Age``, ``Gender``, ``Height`` or ``ICUType`` row: the first is kept.

Static descriptors (a ``static`` cell is NaN, no row dropped):
``descriptor_missing:<name>`` (``-1`` in the file), ``descriptor_absent:<name>`` (no row),
``descriptor_implausible:<name>`` (outside :data:`VALID_RANGES`). Files in the folder or
archive that are not ``.txt`` records are skipped and counted as ``ignored_file``.

Outcomes: ``outcome_missing:<column>`` (``-1``, NaN in ``outcomes``; for ``survival``
``-1`` means "not known to have died"), ``outcome_without_record`` (an outcome row
whose record is not in the set, dropped) and ``outcomes_blank_line``.

The general descriptor ``Weight`` is the *first* ``Weight`` row at ``00:00``; every other
``Weight`` row is a time-varying event (one stay of set B has two at ``00:00``).
"""

from __future__ import annotations

import logging
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from medseq.schema import DataError, OnBad, ReadReport, validate_events
from medseq.sources._download import fetch
from medseq.sources._longcsv import LongRows, RecordFile, check_policy, parse_long_csv
from medseq.sources._physionet2012_rules import (
    DESCRIPTORS,
    VALID_RANGES,
    VARIABLES,
    bounds,
    in_range,
    merge_duplicates,
    plausible,
    read_outcomes,
)

__all__ = [
    "BASE_URL",
    "DESCRIPTORS",
    "SHA256",
    "VALID_RANGES",
    "VARIABLES",
    "PhysioNet2012Set",
    "download",
    "read",
]

logger = logging.getLogger(__name__)

BASE_URL = "https://physionet.org/files/challenge-2012/1.0.0/"
#: Official SHA-256 of the PhysioNet v1.0.0 files. The Outcomes values match
#: shared/data/physionet2012/SHA256SUMS.txt; the tarball values are quoted identically by
#: several independent projects (e.g. randolf-scholz/tsdm's Physionet2012 dataset) that
#: also quote these same Outcomes values. The tarballs under shared/data are repacked,
#: so they do not have these hashes: :func:`read` does not check hashes.
SHA256: dict[str, str] = {
    "set-a.tar.gz": "8cb250f179cd0952b4b9ebcf8954b63d70383131670fac1cfee13deaa13ca920",
    "set-b.tar.gz": "b1637a2a423a8e76f8f087896cfc5fdf28f88519e1f4e874fbda69b2a64dac30",
    "set-c.tar.gz": "a4a56b95bcee4d50a3874fe298bf2998f2ed0dd98a676579573dc10419329ee1",
    "Outcomes-a.txt": "2613ea60ccda29f87571a7d6b09ad130858a8ccd66325bd073365925026883c2",
    "Outcomes-b.txt": "1305f29734da374a809483229a99f33a9230aa8d4fa74b1a2d6ad788136423d5",
    "Outcomes-c.txt": "0b32dcb7753c0f18f2f5fde498a28618b8879c5e527ce0dae8ad120dd7e205c9",
}
SETS = ("a", "b", "c")
_SET_NAME = re.compile(r"set-([a-z])(?:\.tar\.gz|\.tgz|\.tar)?")
_STATIC_ONLY = ("Age", "Gender", "Height", "ICUType")


@dataclass(frozen=True)
class PhysioNet2012Set:
    """One Challenge set, read.

    Attributes
    ----------
    events : pandas.DataFrame
        Long table ``subject_id`` (int64), ``time`` (float64 hours since ICU admission),
        ``code`` (string, one of :data:`VARIABLES`), ``value`` (float64), sorted by
        (subject_id, time). Descriptors are not in here.
    static : pandas.DataFrame
        Indexed by ``subject_id``; columns :data:`DESCRIPTORS` (float64, NaN = missing).
    outcomes : pandas.DataFrame
        Indexed by ``subject_id``; ``saps_i, sofa, length_of_stay, survival`` (float64,
        NaN where the file says -1) and ``in_hospital_death`` (int64, 0/1).
    report : ReadReport
        Subjects, events and the count of every quirk tolerated (keys in the module doc).
    """

    events: pd.DataFrame
    static: pd.DataFrame
    outcomes: pd.DataFrame
    report: ReadReport


def read(
    path: str | os.PathLike[str],
    *,
    outcomes: str | os.PathLike[str] | None = None,
    on_bad_row: OnBad = "raise",
) -> PhysioNet2012Set:
    """Read one set of the Challenge into events, static descriptors and outcomes.

    Parameters
    ----------
    path : path-like
        The set folder (``set-a/`` holding ``<RecordID>.txt``) or its archive
        (``set-a.tar.gz``, with ``set-a/`` inside, as PhysioNet publishes it).
    outcomes : path-like, optional
        Default: ``Outcomes-<x>.txt`` beside ``path``.
    on_bad_row : {"raise", "warn", "skip"}, default="raise"
        Garbled rows (not 3 fields, time not ``hh:mm``, garbled name, non-numeric
        value) raise a DataError naming ``file:line``, or are dropped and counted
        (``"warn"`` also logs them). Garbled files always raise.

    Raises
    ------
    DataError
        Bad header, missing, repeated or wrong ``RecordID`` row, a record without an
        outcome row, a garbled outcomes file, or (under ``"raise"``) a garbled row.
    FileNotFoundError
        If ``path`` or the outcomes file does not exist.

    Examples
    --------
    Set A of the Challenge (``../shared/data`` or ``$MEDSEQ_DATA``): 4000 stays, 554 deaths.

    >>> from medseq.paths import dataset_dir
    >>> data = read(dataset_dir("physionet2012") / "set-a.tar.gz")
    >>> len(data.static), int(data.outcomes["in_hospital_death"].sum())
    (4000, 554)
    >>> data.report.n_events
    1729936
    """
    check_policy(on_bad_row)
    path = Path(path)
    outcomes_path = _outcomes_path(path, outcomes)
    report = ReadReport(source=str(path))
    files, record_ids = _record_files(path, report)
    rows = parse_long_csv(files, on_bad_row=on_bad_row, report=report)
    _check_record_ids(rows, files, record_ids)
    static, consumed = _static(rows, record_ids, report)
    events = _events(rows.take(~consumed), files, record_ids, report)
    frame = read_outcomes(outcomes_path, record_ids, [f.name for f in files], report)
    report.n_subjects = len(record_ids)
    report.n_events = len(events)
    logger.info("%s", report.summary())
    return PhysioNet2012Set(events=events, static=static, outcomes=frame, report=report)


def download(
    dest: str | os.PathLike[str],
    set_name: str = "a",
    *,
    base_url: str = BASE_URL,
    progress: bool = True,
) -> Path:
    """Download ``set-<x>.tar.gz`` and ``Outcomes-<x>.txt`` into ``dest``, hash-checked.

    Each file is checked against :data:`SHA256`; a mismatch deletes it and raises
    :class:`~medseq.sources._download.ChecksumError`. Files already present with the
    right hash are kept, so an interrupted download resumes by calling again.

    Parameters
    ----------
    dest : path-like
        Folder to write into (created if needed).
    set_name : {"a", "b", "c"}, default="a"
    base_url : str, default=BASE_URL
        Where the files live (a ``file://`` mirror works too).
    progress : bool, default=True
        Show a tqdm progress bar per file.

    Returns
    -------
    pathlib.Path
        The downloaded ``set-<x>.tar.gz``: pass it to :func:`read`.
    """
    if set_name not in SETS:
        raise ValueError(f"set_name must be one of {SETS}, got {set_name!r}")
    dest = Path(dest)
    for name in (f"Outcomes-{set_name}.txt", f"set-{set_name}.tar.gz"):
        fetch(f"{base_url.rstrip('/')}/{name}", dest / name, SHA256[name], progress=progress)
    return dest / f"set-{set_name}.tar.gz"


def _outcomes_path(path: Path, outcomes: str | os.PathLike[str] | None) -> Path:
    """The given outcomes file, or ``Outcomes-<x>.txt`` beside ``set-<x>[.tar.gz]``."""
    if outcomes is None:
        match = _SET_NAME.fullmatch(path.name)
        if match is None:
            raise ValueError(
                f"{path}: cannot find its outcomes file: expected a name like 'set-a' or "
                "'set-a.tar.gz' (then Outcomes-a.txt beside it); pass outcomes=<path>"
            )
        outcomes = path.parent / f"Outcomes-{match[1]}.txt"
    if not Path(outcomes).is_file():
        raise FileNotFoundError(
            f"outcomes file {outcomes} not found; pass outcomes=<path to Outcomes-x.txt>"
        )
    return Path(outcomes)


def _record_files(path: Path, report: ReadReport) -> tuple[list[RecordFile], np.ndarray]:
    """Every ``<RecordID>.txt`` of the folder or archive, sorted by RecordID."""
    if path.is_dir():
        entries = sorted(p for p in path.iterdir() if p.is_file())
        named = [(f"{path}/{p.name}", p.name, p) for p in entries]
        report.add("ignored_file", sum(not n.endswith(".txt") for _, n, _ in named))
        raw = [(shown, name, p.read_bytes()) for shown, name, p in named if name.endswith(".txt")]
    elif path.is_file():
        raw = _archive_members(path, report)
    else:
        raise FileNotFoundError(f"{path}: no such folder or archive")
    ids = []
    for shown, name, _ in raw:
        stem = PurePosixPath(name).name[: -len(".txt")]
        if not (stem.isascii() and stem.isdigit()):
            raise DataError(f"{shown}: expected a record file named <RecordID>.txt, got {name!r}")
        ids.append(int(stem))
    if not ids:
        raise DataError(f"{path}: no <RecordID>.txt record files found")
    record_ids = np.asarray(ids, dtype=np.int64)
    order = np.argsort(record_ids, kind="stable")
    record_ids = record_ids[order]
    repeated = np.flatnonzero(np.diff(record_ids) == 0)
    if len(repeated):
        twice = [raw[order[i]][0] for i in (repeated[0], repeated[0] + 1)]
        raise DataError(f"{twice[1]}: RecordID {record_ids[repeated[0]]} also in {twice[0]}")
    return [RecordFile(raw[i][0], raw[i][2]) for i in order], record_ids


def _archive_members(path: Path, report: ReadReport) -> list[tuple[str, str, bytes]]:
    """(display name, member name, bytes) of each ``.txt`` in a tar archive (not extracted)."""
    out = []
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                if not member.name.endswith(".txt"):
                    report.add("ignored_file")
                    continue
                handle = archive.extractfile(member)
                data = handle.read() if handle is not None else b""
                out.append((f"{path}/{member.name}", member.name, data))
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataError(f"{path}: expected a set folder or a .tar.gz archive: {err}") from None
    return out


def _check_record_ids(rows: LongRows, files: list[RecordFile], record_ids: np.ndarray) -> None:
    """Exactly one ``RecordID`` row per file, equal to the number in the file's name."""
    rid_rows = np.flatnonzero(np.asarray(rows.name == "RecordID"))
    per_file = np.bincount(rows.file_index[rid_rows], minlength=len(files))
    missing = np.flatnonzero(per_file == 0)
    if len(missing):
        first = missing[0]
        raise DataError(
            f"{files[first].name}: missing RecordID row: expected '00:00,RecordID,"
            f"{record_ids[first]}' after the header ({len(missing)} file(s) lack one)"
        )
    repeated = rid_rows[1:][np.diff(rows.file_index[rid_rows]) == 0]
    if len(repeated):
        where = rows.where(int(repeated[0]), files)
        raise DataError(f"{where}: second RecordID row: expected exactly one per file")
    expected = record_ids[rows.file_index[rid_rows]]
    wrong = np.flatnonzero(rows.value[rid_rows] != expected)
    if len(wrong):
        row = int(rid_rows[wrong[0]])
        raise DataError(
            f"{rows.where(row, files)}: RecordID does not match the file name: expected "
            f"{expected[wrong[0]]}, got {rows.value[row]:g}"
        )


def _static(
    rows: LongRows, record_ids: np.ndarray, report: ReadReport
) -> tuple[pd.DataFrame, np.ndarray]:
    """The descriptor table, and the mask of rows used up (RecordID, descriptors, repeats)."""
    names = rows.name
    static_only = np.asarray(names.isin(_STATIC_ONLY))
    weight0 = np.asarray(names == "Weight") & (rows.time_hours == 0.0)
    candidates = np.flatnonzero(static_only | weight0)
    key = pd.DataFrame({"file": rows.file_index[candidates], "name": names.codes[candidates]})
    first = ~key.duplicated().to_numpy()
    used = candidates[first]
    repeated = candidates[~first & static_only[candidates]]  # later Weight rows are events
    report.add("duplicate_descriptor", len(repeated))
    column = pd.Index(DESCRIPTORS).get_indexer(np.asarray(names[used], dtype=object))
    table = np.full((len(record_ids), len(DESCRIPTORS)), np.nan)
    table[rows.file_index[used], column] = rows.value[used]
    for j, name in enumerate(DESCRIPTORS):
        values = table[:, j]
        absent = np.ones(len(record_ids), dtype=bool)
        absent[rows.file_index[used[column == j]]] = False
        minus_one = values == -1.0
        implausible = ~minus_one & ~absent & ~plausible(name, values)
        report.add(f"descriptor_absent:{name}", int(absent.sum()))
        report.add(f"descriptor_missing:{name}", int(minus_one.sum()))
        report.add(f"descriptor_implausible:{name}", int(implausible.sum()))
        values[minus_one | implausible] = np.nan
    consumed = np.asarray(names == "RecordID")
    consumed[used] = True
    consumed[repeated] = True
    index = pd.Index(record_ids, name="subject_id")
    return pd.DataFrame(table, index=index, columns=list(DESCRIPTORS)), consumed


def _events(
    rows: LongRows, files: list[RecordFile], record_ids: np.ndarray, report: ReadReport
) -> pd.DataFrame:
    """Time-varying rows: drop (and count) quirks, merge repeats, sort, validate."""
    names = rows.name
    empty = np.asarray(names == "")
    known = np.asarray(names.isin(VARIABLES))
    unknown = ~known & ~empty
    report.add("empty_parameter", int(empty.sum()))
    if unknown.any():
        first = int(np.flatnonzero(unknown)[0])
        report.add("unknown_parameter", int(unknown.sum()))
        logger.warning(
            "skipped %d rows with unknown parameter names %s (first at %s)",
            int(unknown.sum()),
            sorted(set(np.asarray(names[unknown], dtype=object))),
            rows.where(first, files),
        )
    rows = rows.take(known)
    code = pd.Index(VARIABLES).get_indexer(np.asarray(rows.name.categories, dtype=object))[
        rows.name.codes
    ]
    lows, highs, integer = bounds(VARIABLES)
    ok = in_range(rows.value, lows[code], highs[code], integer[code])
    dropped = np.bincount(code[~ok], minlength=len(VARIABLES))
    for j in np.flatnonzero(dropped):
        report.add(f"implausible_value:{VARIABLES[j]}", int(dropped[j]))
    subject = record_ids[rows.file_index[ok]]
    time, code, value = rows.time_hours[ok], code[ok], rows.value[ok]
    keep, value = merge_duplicates(subject, time, code, value)
    report.add("duplicate_time_merged", int((~keep).sum()))
    subject, time, code, value = subject[keep], time[keep], code[keep], value[keep]
    if len(subject) > 1 and (np.diff(time)[np.diff(subject) == 0] < 0).any():
        order = np.lexsort((time, subject))  # stable: ties keep their file order
        subject, time, code, value = subject[order], time[order], code[order], value[order]
    codes = pd.Categorical.from_codes(code, categories=list(VARIABLES))
    frame = pd.DataFrame({"subject_id": subject, "time": time, "code": codes, "value": value})
    return validate_events(frame, where="physionet2012 events")
