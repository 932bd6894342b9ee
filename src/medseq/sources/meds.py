"""MEDS (Medical Event Data Standard) folders: read into a HistorySet, write one out.

A MEDS dataset is a folder (https://github.com/Medical-Event-Data-Standard/meds):

* ``data/**/*.parquet``: the events, columns ``subject_id`` (int64), ``time``
  (timestamp[us], null for static facts), ``code`` (string), ``numeric_value`` (float32,
  null when the event has no number); each subject in one file, sorted by time;
* ``metadata/dataset.json``: dataset and ETL names and versions;
* ``metadata/codes.parquet``: one row per code (``code``, ``description``, ``parent_codes``);
* ``metadata/subject_splits.parquet``: optional ``subject_id`` -> ``split``
  (``train``, ``tuning``, ``held_out``).

MEDS keeps absolute times; medseq keeps hours since each subject's first admission. The
reader sets that origin from the first ``ADMISSION/`` code (the codes of
:mod:`medseq.sources.history`; other prefixes can be passed), and the writer adds
:attr:`HistorySet.origin` back, so MIMIC -> MEDS -> medseq gives the same events. Static
facts (null ``time``) are placed at the subject's first timed event and counted as
``static_event_placed_first``; subjects whose events all lack a time are skipped and
counted as ``subject_without_time``. Pyarrow (a core dependency) does the parquet work.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from medseq.schema import DataError, ReadReport, validate_events
from medseq.sources.history import (
    ADMISSION_PREFIX,
    DISCHARGE_PREFIX,
    HistorySet,
    check_history,
    visits_from_events,
)
from medseq.sources.icd9 import parent_code

logger = logging.getLogger(__name__)

MEDS_VERSION = "0.3.3"
DATA_COLUMNS = ("subject_id", "time", "code", "numeric_value")
SPLITS = ("train", "tuning", "held_out")
HOUR = pd.Timedelta(hours=1)


def _data_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("subject_id", pa.int64()),
            ("time", pa.timestamp("us")),
            ("code", pa.string()),
            ("numeric_value", pa.float32()),
        ]
    )


def _read_shard(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for a garbled file
        raise DataError(f"{path}: not a readable parquet file ({err})") from None
    missing = [c for c in DATA_COLUMNS if c not in table.column_names]
    if missing:
        raise DataError(f"{path}: missing MEDS columns {missing}; it has {table.column_names}")
    frame = table.select(list(DATA_COLUMNS)).to_pandas()
    if frame["subject_id"].isna().any():
        row = int(np.flatnonzero(frame["subject_id"].isna().to_numpy())[0])
        raise DataError(f"{path}: row {row}: subject_id is null")
    if frame["code"].isna().any():
        row = int(np.flatnonzero(frame["code"].isna().to_numpy())[0])
        raise DataError(f"{path}: row {row}: code is null")
    try:
        frame["time"] = pd.to_datetime(frame["time"]).astype("datetime64[us]")
        frame["numeric_value"] = pd.to_numeric(frame["numeric_value"]).astype(np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(
            f"{path}: time must be a timestamp and numeric_value a number ({err})"
        ) from None
    frame["subject_id"] = frame["subject_id"].astype(np.int64)
    frame["shard"] = str(path)
    return frame


def origins(frame: pd.DataFrame, start_prefix: str) -> pd.Series:
    """Hour 0 per subject: its first ``start_prefix`` code, else its first timed event.

    ``frame`` has ``subject_id``, ``time`` (datetime64, NaT for static facts) and ``code``.
    """
    timed = frame[frame["time"].notna()]
    first_any = timed.groupby("subject_id")["time"].min()
    admitted = timed[timed["code"].str.startswith(start_prefix)]
    first_admission = admitted.groupby("subject_id")["time"].min()
    return first_admission.combine_first(first_any).rename("origin")


def read_events(
    path: str | Path, *, start_prefix: str = ADMISSION_PREFIX
) -> tuple[pd.DataFrame, pd.Series, ReadReport]:
    """Read a MEDS folder into the canonical event table, without forming visits.

    Any MEDS data (not only histories with admissions and discharges) reads this way; the
    readers of other formats (:mod:`medseq.sources.fhir_r4`) come back through it.

    Parameters
    ----------
    path : str or Path
        The MEDS root folder.
    start_prefix : str, default="ADMISSION/"
        Hour 0 of a subject is its first event whose code starts with this prefix (else
        its first timed event).

    Returns
    -------
    events : DataFrame
        ``subject_id, time, code, value`` sorted by subject and time (stable: the files'
        order within one time).
    origin : Series
        ``datetime64[us]`` instant of hour 0 per ``subject_id``.
    report : ReadReport
        ``subject_without_time`` and ``static_event_placed_first`` counts.
    """
    root = Path(path)
    shards = sorted((root / "data").glob("**/*.parquet"))
    if not shards:
        raise DataError(f"{root}: no MEDS data files (expected data/**/*.parquet)")
    report = ReadReport(source=str(root))
    frame = pd.concat([_read_shard(p) for p in shards], ignore_index=True)
    spread = frame.groupby("subject_id")["shard"].nunique()
    if (spread > 1).any():
        sid = int(spread.index[spread.to_numpy() > 1][0])
        files = sorted(frame.loc[frame["subject_id"] == sid, "shard"].unique())
        raise DataError(f"{root}: subject {sid} is split over {files}; MEDS keeps one per file")
    events, origin = events_from_frame(frame, start_prefix, report, where=str(root))
    return events, origin, report


def events_from_frame(
    frame: pd.DataFrame, start_prefix: str, report: ReadReport, *, where: str
) -> tuple[pd.DataFrame, pd.Series]:
    """MEDS rows (``subject_id``, ``time`` datetime64 or NaT, ``code``, ``numeric_value``)
    as the canonical event table in hours since each subject's origin, and that origin.

    The part of :func:`read_events` after the files are read, shared with the REST service
    (:mod:`medseq.datasets.meds_serving`), so a patient's rows posted as JSON become the
    events a MEDS folder with the same rows gives. Counts ``subject_without_time`` and
    ``static_event_placed_first`` in ``report``.
    """
    origin = origins(frame, start_prefix)
    timeless = ~frame["subject_id"].isin(origin.index)
    report.add("subject_without_time", int(frame.loc[timeless, "subject_id"].nunique()))
    frame = frame[~timeless]
    static = frame["time"].isna()
    report.add("static_event_placed_first", int(static.sum()))
    first = frame[~static].groupby("subject_id")["time"].min()
    when = frame["time"].fillna(first.reindex(frame["subject_id"]).set_axis(frame.index))
    hours = (when - origin.reindex(frame["subject_id"]).to_numpy()) / HOUR
    events = pd.DataFrame(
        {
            "subject_id": frame["subject_id"],
            "time": hours,
            "code": frame["code"].astype(str),
            "value": frame["numeric_value"],
        }
    ).sort_values(["subject_id", "time"], kind="stable")
    events = validate_events(events, where=where)
    report.n_subjects = int(events["subject_id"].nunique())
    report.n_events = len(events)
    return events, origin


def read(
    path: str | Path,
    *,
    start_prefix: str = ADMISSION_PREFIX,
    end_prefix: str = DISCHARGE_PREFIX,
) -> HistorySet:
    """Read a MEDS folder (``data/**/*.parquet``) into a :class:`HistorySet`.

    Parameters
    ----------
    path : str or Path
        The MEDS root folder.
    start_prefix, end_prefix : str
        Codes that open and close a visit (``ADMISSION/`` and ``DISCHARGE/`` as medseq
        writes them).

    Raises
    ------
    DataError
        For a missing ``data/`` folder or column, null ids or codes, a subject split over
        several files, or admissions without their discharges.
    """
    root = Path(path)
    events, origin, report = read_events(root, start_prefix=start_prefix)
    visits = visits_from_events(
        events, start_prefix=start_prefix, end_prefix=end_prefix, where=str(root)
    )
    check_history(events, visits, report)
    logger.info("%s", report.summary())
    return HistorySet(events=events, visits=visits, origin=origin, report=report)


def write(
    history: HistorySet,
    path: str | Path,
    *,
    splits: Mapping[int, str] | None = None,
    dataset_name: str = "medseq",
    subjects_per_shard: int | None = None,
) -> Path:
    """Write ``history`` as a MEDS folder at ``path`` (created; existing files overwritten).

    Parameters
    ----------
    history : HistorySet
        Its :attr:`~HistorySet.origin` turns hours back into absolute times.
    splits : mapping of subject_id to split name, optional
        Written to ``metadata/subject_splits.parquet``.
    dataset_name : str, default="medseq"
    subjects_per_shard : int, optional
        Subjects per ``data/<k>.parquet`` file; default one file.

    Returns
    -------
    Path
        The MEDS root.
    """
    return write_events(
        history.events,
        history.origin,
        path,
        splits=splits,
        dataset_name=dataset_name,
        subjects_per_shard=subjects_per_shard,
    )


def write_events(
    events: pd.DataFrame,
    origin: pd.Series,
    path: str | Path,
    *,
    splits: Mapping[int, str] | None = None,
    dataset_name: str = "medseq",
    subjects_per_shard: int | None = None,
) -> Path:
    """Write a canonical event table as a MEDS folder: the hub every reader can export to.

    Parameters
    ----------
    events : DataFrame
        ``subject_id, time, code, value`` (hours since each subject's origin).
    origin : Series
        ``datetime64`` instant of hour 0 per ``subject_id``: turns hours back into absolute
        times. Values are stored as MEDS's float32.
    path, splits, dataset_name, subjects_per_shard
        As in :func:`write`.

    Returns
    -------
    Path
        The MEDS root.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(path)
    unknown = sorted(set(events["subject_id"].unique()) - set(origin.index))
    if unknown:
        raise ValueError(f"origin has no time origin for subjects {unknown[:5]}")
    # numpy microseconds: MIMIC's shifted birth dates lie beyond pandas' 292-year ns range.
    hour0 = origin.reindex(events["subject_id"]).to_numpy().astype("datetime64[us]")
    offset = np.rint(events["time"].to_numpy() * 3.6e9).astype(np.int64)
    when = hour0 + offset.astype("timedelta64[us]")
    data = pd.DataFrame(
        {
            "subject_id": events["subject_id"].to_numpy(dtype=np.int64),
            "time": when,
            "code": events["code"].to_numpy(dtype=object),
            "numeric_value": events["value"].to_numpy(dtype=np.float32),
        }
    )
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    subjects = np.unique(data["subject_id"])
    size = subjects_per_shard or max(len(subjects), 1)
    for k, start in enumerate(range(0, max(len(subjects), 1), size)):
        part = data[data["subject_id"].isin(subjects[start : start + size])]
        table = pa.Table.from_pandas(part, schema=_data_schema(), preserve_index=False)
        pq.write_table(table, root / "data" / f"{k}.parquet")
    _write_metadata(root, data["code"], dataset_name)
    if splits is not None:
        _write_splits(root, splits)
    return root


def _write_metadata(root: Path, codes: pd.Series, dataset_name: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from medseq import __version__

    meta = {
        "dataset_name": dataset_name,
        "dataset_version": "",
        "etl_name": "medseq",
        "etl_version": __version__,
        "meds_version": MEDS_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(),
    }
    (root / "metadata" / "dataset.json").write_text(json.dumps(meta, indent=2))
    unique = sorted(codes.unique())
    parents = [[p] if (p := parent_code(c)) else [] for c in unique]
    schema = pa.schema(
        [
            ("code", pa.string()),
            ("description", pa.string()),
            ("parent_codes", pa.list_(pa.string())),
        ]
    )
    table = pa.table(
        {"code": unique, "description": [None] * len(unique), "parent_codes": parents},
        schema=schema,
    )
    pq.write_table(table, root / "metadata" / "codes.parquet")


def _write_splits(root: Path, splits: Mapping[int, str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "subject_id": pa.array([int(s) for s in splits], pa.int64()),
            "split": pa.array([str(v) for v in splits.values()], pa.string()),
        }
    )
    pq.write_table(table, root / "metadata" / "subject_splits.parquet")


def read_splits(path: str | Path) -> pd.Series:
    """``metadata/subject_splits.parquet`` as a Series subject_id -> split name."""
    import pyarrow.parquet as pq

    file = Path(path) / "metadata" / "subject_splits.parquet"
    if not file.is_file():
        raise DataError(f"{path}: no metadata/subject_splits.parquet")
    frame = pq.read_table(file).to_pandas()
    missing = [c for c in ("subject_id", "split") if c not in frame.columns]
    if missing:
        raise DataError(f"{file}: missing columns {missing}")
    return frame.set_index("subject_id")["split"].astype(str)
