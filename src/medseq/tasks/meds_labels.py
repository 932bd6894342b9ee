"""Labels in the MEDS label schema: read one written by another tool, write ours.

The MEDS label schema (``meds`` 0.3, ``label_schema``) is one row per sample::

    subject_id        int64
    prediction_time   timestamp[us]   (naive, UTC)
    boolean_value     bool     (nullable)
    integer_value     int64    (nullable)
    float_value       float64  (nullable)
    categorical_value string   (nullable)

A labelling tool (ACES, MEDS-DEV tasks, a hand-written script) fills the column its task
needs and leaves the others null. :func:`read_meds_labels` reads such a file (or a folder
of parquet shards) as it is, so a cohort defined elsewhere is trained on here with the same
samples; ``numeric_value`` is accepted as another name of a numeric column, since some tools
write it. :func:`meds_label_frame` writes our samples back in the same schema, so the
cohort of a ``[task]`` table can be used by those tools.

Bad input is refused with the file and the problem named: a missing column, a null label,
a label that is not 0/1, or the same ``(subject_id, prediction_time)`` twice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medseq.schema import DataError
from medseq.tasks.spec import MedsLabels

SCHEMA_COLUMNS = (
    "subject_id",
    "prediction_time",
    "boolean_value",
    "integer_value",
    "float_value",
    "categorical_value",
)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(path.rglob("*.parquet"))
        if not files:
            raise DataError(f"{path}: no *.parquet label file in this folder")
        return files
    if not path.exists():
        raise DataError(f"{path}: no such MEDS label file")
    return [path]


def _read_table(path: Path, value: str) -> pd.DataFrame:
    import pyarrow.parquet as pq

    frames = []
    for file in _files(path):
        try:
            names = pq.read_schema(file).names
        except Exception as err:  # pyarrow raises several types for a non-parquet file
            raise DataError(f"{file}: not a parquet file ({err})") from None
        missing = [c for c in ("subject_id", "prediction_time", value) if c not in names]
        if missing:
            raise DataError(f"{file}: MEDS label file lacks column(s) {missing}; it has {names}")
        frames.append(pq.read_table(file, columns=["subject_id", "prediction_time", value]))
    return pd.concat([f.to_pandas() for f in frames], ignore_index=True)


def _as_label(column: pd.Series, spec: MedsLabels, where: str) -> np.ndarray:
    """The 0/1 label of each row from the chosen value column."""
    if column.isna().any():
        raise DataError(
            f"{where}: {int(column.isna().sum())} rows have no {spec.value} (null); every "
            "sample needs a label"
        )
    if spec.value == "boolean_value":
        if not pd.api.types.is_bool_dtype(column):
            raise DataError(f"{where}: boolean_value must be boolean, got {column.dtype}")
        return column.to_numpy(dtype=np.int64)
    if spec.value == "integer_value":
        bad = ~column.isin([0, 1])
        if bad.any():
            raise DataError(
                f"{where}: integer_value must be 0 or 1 for a binary task, got "
                f"{sorted(column[bad].unique().tolist())[:5]}"
            )
        return column.to_numpy(dtype=np.int64)
    if spec.value == "categorical_value":
        return column.astype(str).isin(spec.positive).to_numpy(dtype=np.int64)
    assert spec.above is not None  # MedsLabels checks it
    values = pd.to_numeric(column, errors="coerce")
    if values.isna().any():
        raise DataError(f"{where}: {spec.value} holds values that are not numbers")
    return (values.to_numpy(dtype=np.float64) > spec.above).astype(np.int64)


def read_meds_labels(spec: MedsLabels, origin: pd.Series) -> pd.DataFrame:
    """The samples of a MEDS label file: ``subject_id``, ``cutoff`` (hours after each
    subject's hour 0, ``origin``; NaN for a subject without one) and ``label`` (0/1).

    Raises
    ------
    DataError
        If the file is missing or malformed (see the module docstring).
    """
    path = Path(spec.path)
    where = str(path)
    table = _read_table(path, spec.value)
    if table.empty:
        raise DataError(f"{where}: the label file has no rows")
    if table["subject_id"].isna().any() or table["prediction_time"].isna().any():
        raise DataError(f"{where}: subject_id and prediction_time must not be null")
    try:
        when = pd.to_datetime(table["prediction_time"], utc=True)
    except (ValueError, TypeError) as err:
        raise DataError(f"{where}: prediction_time is not a timestamp ({err})") from None
    subject = table["subject_id"].to_numpy(dtype=np.int64)
    dup = pd.DataFrame({"s": subject, "t": when}).duplicated()
    if dup.any():
        first = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(
            f"{where}: {int(dup.sum())} rows repeat a (subject_id, prediction_time), e.g. "
            f"subject {subject[first]} at {when.iloc[first]}"
        )
    hour0 = pd.to_datetime(origin.reindex(subject), utc=True).to_numpy()
    cutoff = (when.to_numpy() - hour0) / pd.Timedelta(hours=1)
    return pd.DataFrame(
        {
            "subject_id": subject,
            "cutoff": np.asarray(cutoff, dtype=np.float64),
            "label": _as_label(table[spec.value], spec, where),
        }
    )


def _microseconds(hours: np.ndarray) -> np.ndarray:
    """Hours as whole microseconds (MEDS times are µs; float hours carry rounding noise)."""
    return np.round(np.asarray(hours, dtype=np.float64) * 3.6e9).astype(np.int64)


def meds_label_frame(samples: pd.DataFrame, labels: pd.Series, origin: pd.Series):
    """Our samples as a ``pyarrow.Table`` in the MEDS label schema (boolean labels; the
    other value columns null, typed, so MEDS readers accept the file)."""
    import pyarrow as pa

    hour0 = pd.to_datetime(origin.reindex(samples["subject_id"]), utc=True)
    if hour0.isna().any():
        raise DataError("a sample's subject has no time origin: cannot write its prediction time")
    start = hour0.dt.tz_localize(None).to_numpy().astype("datetime64[us]")
    when = start + _microseconds(samples["cutoff"].to_numpy()).astype("timedelta64[us]")
    n = len(samples)
    schema = pa.schema(
        [
            ("subject_id", pa.int64()),
            ("prediction_time", pa.timestamp("us")),
            ("boolean_value", pa.bool_()),
            ("integer_value", pa.int64()),
            ("float_value", pa.float64()),
            ("categorical_value", pa.string()),
        ]
    )
    return pa.table(
        {
            "subject_id": samples["subject_id"].to_numpy(dtype=np.int64),
            "prediction_time": when,
            "boolean_value": labels.loc[samples.index].to_numpy().astype(bool),
            "integer_value": pa.nulls(n, pa.int64()),
            "float_value": pa.nulls(n, pa.float64()),
            "categorical_value": pa.nulls(n, pa.string()),
        },
        schema=schema,
    )


def write_meds_labels(
    samples: pd.DataFrame, labels: pd.Series, origin: pd.Series, path: str | Path
) -> Path:
    """Write the samples' labels as a MEDS label parquet file; returns the path."""
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(meds_label_frame(samples, labels, origin), path)
    return path
