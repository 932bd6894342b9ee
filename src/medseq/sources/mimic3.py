"""MIMIC-III hospital histories: admissions, ICD-9 diagnoses and procedures, prescriptions.

Reads the tables of a MIMIC-III download (full database or the open demo), each as
``<TABLE>.csv.gz`` or ``<TABLE>.csv`` in one folder, column names in either case (the demo
writes them in lower case, the full database in upper case):

=================  ===================================================================
table              columns used
=================  ===================================================================
ADMISSIONS         subject_id, hadm_id, admittime, dischtime, deathtime,
                   admission_type, discharge_location
PATIENTS           subject_id, gender, dob, dod
DIAGNOSES_ICD      subject_id, hadm_id, icd9_code
PROCEDURES_ICD     subject_id, hadm_id, icd9_code
PRESCRIPTIONS      subject_id, hadm_id, startdate, drug, ndc
=================  ===================================================================

into a :class:`~medseq.sources.history.HistorySet` (codes and their times are described
there). A missing table or column, an unreadable id or date, or a discharge before its
admission raises :class:`~medseq.schema.DataError` naming the file, line and field. Rows
that cannot be placed are skipped and counted in ``report.counts``:

``<table>_unknown_admission``
    a row whose ``hadm_id`` is not in ADMISSIONS.
``<table>_subject_mismatch``
    a row whose ``subject_id`` is not the one of its ``hadm_id`` in ADMISSIONS.
``<table>_missing_code``
    a diagnosis or procedure without ``icd9_code``; a prescription without drug name or NDC.
``prescriptions_missing_startdate``
    a prescription without start date.
``patients_without_admission``
    a PATIENTS row of a subject with no admission (nothing to anchor its clock).

and repairs are counted too: ``prescriptions_clipped_to_admission`` (a start day outside
its admission: the event is moved to the admission's nearest end),
``prescriptions_coded_by_name`` (no usable NDC: ``DRUG/<name>``), ``deathtime_clipped``
(a ``deathtime`` outside its admission, moved to the nearest end),
``discharge_location_missing`` (``DISCHARGE/UNKNOWN``), ``admission_without_patient``.

See ``shared/data/mimic3demo/SOURCE.md`` and https://physionet.org/content/mimiciii-demo/.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from medseq.schema import DataError, ReadReport, validate_events
from medseq.sources.history import (
    ADMISSION_PREFIX,
    BIRTH_CODE,
    DEATH_CODE,
    DISCHARGE_PREFIX,
    HistorySet,
    check_history,
    visits_from_events,
)

logger = logging.getLogger(__name__)

COLUMNS: dict[str, tuple[str, ...]] = {
    "ADMISSIONS": (
        "subject_id",
        "hadm_id",
        "admittime",
        "dischtime",
        "deathtime",
        "admission_type",
        "discharge_location",
    ),
    "PATIENTS": ("subject_id", "gender", "dob", "dod"),
    "DIAGNOSES_ICD": ("subject_id", "hadm_id", "icd9_code"),
    "PROCEDURES_ICD": ("subject_id", "hadm_id", "icd9_code"),
    "PRESCRIPTIONS": ("subject_id", "hadm_id", "startdate", "drug", "ndc"),
}
OPTIONAL_TABLES = ("DIAGNOSES_ICD", "PROCEDURES_ICD", "PRESCRIPTIONS")
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
ONE_DAY = pd.Timedelta(days=1)
HOUR = pd.Timedelta(hours=1)
# Order of same-time events of one subject: the admission first, the discharge last.
_RANK = {"admission": 0, "birth": 1, "drug": 2, "dx": 3, "px": 4, "death": 5, "discharge": 6}


def table_file(folder: Path, table: str) -> Path:
    """``<TABLE>.csv.gz`` or ``<TABLE>.csv`` (either case) in ``folder``."""
    for name in (table, table.lower()):
        for suffix in (".csv.gz", ".csv"):
            candidate = folder / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    raise DataError(
        f"{folder}: table {table} not found (looked for {table}.csv.gz and {table}.csv, "
        "in upper or lower case)"
    )


def read_table(folder: Path, table: str) -> pd.DataFrame:
    """The columns medseq uses of one table, as strings, names in lower case.

    Raises
    ------
    DataError
        If the file is missing or lacks a column of :data:`COLUMNS`.
    """
    path = table_file(folder, table)
    wanted = COLUMNS[table]
    try:
        header = pd.read_csv(path, nrows=0)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path}: not a readable CSV ({err})") from None
    by_lower = {str(c).lower(): c for c in header.columns}
    missing = [c for c in wanted if c not in by_lower]
    if missing:
        raise DataError(f"{path}: missing columns {missing}; it has {sorted(by_lower)}")
    frame = pd.read_csv(
        path, usecols=[by_lower[c] for c in wanted], dtype=str, keep_default_na=False
    )
    frame.columns = [str(c).lower() for c in frame.columns]
    frame.attrs["path"] = str(path)
    return frame.replace({"": None})


def _ids(frame: pd.DataFrame, column: str) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | (values != values.round())
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{frame.attrs['path']}: line {i + 2}: {column} must be an integer id, "
            f"got {frame[column].iloc[i]!r}"
        )
    return values.to_numpy(dtype=np.int64)


def _times(frame: pd.DataFrame, column: str, *, required: bool) -> pd.Series:
    raw = frame[column]
    parsed = pd.to_datetime(raw, format=DATETIME_FORMAT, errors="coerce")
    bad = parsed.isna() & (raw.notna() if not required else True)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{frame.attrs['path']}: line {i + 2}: {column} must be a date-time "
            f"'YYYY-MM-DD HH:MM:SS', got {raw.iloc[i]!r}"
        )
    return parsed


def _admissions(folder: Path, report: ReadReport) -> pd.DataFrame:
    raw = read_table(folder, "ADMISSIONS")
    adm = pd.DataFrame(
        {
            "subject_id": _ids(raw, "subject_id"),
            "hadm_id": _ids(raw, "hadm_id"),
            "admittime": _times(raw, "admittime", required=True),
            "dischtime": _times(raw, "dischtime", required=True),
            "deathtime": _times(raw, "deathtime", required=False),
            "admission_type": raw["admission_type"].fillna("UNKNOWN").str.strip(),
            "discharge_location": raw["discharge_location"],
        }
    )
    backwards = adm["dischtime"] < adm["admittime"]
    if backwards.any():
        i = int(np.flatnonzero(backwards.to_numpy())[0])
        raise DataError(
            f"{raw.attrs['path']}: line {i + 2}: dischtime {adm['dischtime'].iloc[i]} is "
            f"before admittime {adm['admittime'].iloc[i]} (hadm_id {adm['hadm_id'].iloc[i]})"
        )
    if adm["hadm_id"].duplicated().any():
        dup = int(adm.loc[adm["hadm_id"].duplicated(), "hadm_id"].iloc[0])
        raise DataError(f"{raw.attrs['path']}: hadm_id {dup} appears twice")
    report.add("discharge_location_missing", int(adm["discharge_location"].isna().sum()))
    adm["discharge_location"] = adm["discharge_location"].fillna("UNKNOWN").str.strip()
    return adm.sort_values(["subject_id", "admittime"], kind="stable").reset_index(drop=True)


def _frame(subject_id, when, code, kind: str) -> pd.DataFrame:
    return pd.DataFrame({"subject_id": subject_id, "when": when, "code": code, "rank": _RANK[kind]})


def _visit_events(adm: pd.DataFrame, report: ReadReport) -> list[pd.DataFrame]:
    death = adm["deathtime"]
    clipped = death.notna() & ((death < adm["admittime"]) | (death > adm["dischtime"]))
    report.add("deathtime_clipped", int(clipped.sum()))
    death = death.clip(lower=adm["admittime"], upper=adm["dischtime"])
    has_death = death.notna()
    return [
        _frame(
            adm["subject_id"],
            adm["admittime"],
            ADMISSION_PREFIX + adm["admission_type"],
            "admission",
        ),
        _frame(
            adm["subject_id"],
            adm["dischtime"],
            DISCHARGE_PREFIX + adm["discharge_location"],
            "discharge",
        ),
        _frame(adm.loc[has_death, "subject_id"], death[has_death], DEATH_CODE, "death"),
    ]


def _patient_events(folder: Path, adm: pd.DataFrame, report: ReadReport) -> list[pd.DataFrame]:
    raw = read_table(folder, "PATIENTS")
    pat = pd.DataFrame(
        {
            "subject_id": _ids(raw, "subject_id"),
            "gender": raw["gender"].fillna("UNKNOWN").str.strip(),
            "dob": _times(raw, "dob", required=True),
            "dod": _times(raw, "dod", required=False),
        }
    )
    known = pat["subject_id"].isin(adm["subject_id"])
    report.add("patients_without_admission", int((~known).sum()))
    report.add("admission_without_patient", int((~adm["subject_id"].isin(pat["subject_id"])).sum()))
    pat = pat[known]
    died_in_hospital = set(adm.loc[adm["deathtime"].notna(), "subject_id"])
    # A death outside hospital is known to the day only: placed at the end of that day.
    outside = pat["dod"].notna() & ~pat["subject_id"].isin(died_in_hospital)
    return [
        _frame(pat["subject_id"], pat["dob"], BIRTH_CODE, "birth"),
        _frame(pat["subject_id"], pat["dob"], "GENDER/" + pat["gender"], "birth"),
        _frame(
            pat.loc[outside, "subject_id"], pat.loc[outside, "dod"] + ONE_DAY, DEATH_CODE, "death"
        ),
    ]


def _join_admission(raw: pd.DataFrame, adm: pd.DataFrame, table: str, report: ReadReport):
    """Rows whose admission is known and belongs to the same subject, with that admission."""
    hadm = pd.Series(_ids(raw, "hadm_id"), index=raw.index)
    subject = pd.Series(_ids(raw, "subject_id"), index=raw.index)
    by_hadm = adm.set_index("hadm_id")
    known = hadm.isin(by_hadm.index)
    report.add(f"{table.lower()}_unknown_admission", int((~known).sum()))
    owner = by_hadm["subject_id"].reindex(hadm).to_numpy()
    mismatch = known.to_numpy() & (owner != subject.to_numpy())
    report.add(f"{table.lower()}_subject_mismatch", int(mismatch.sum()))
    keep = known.to_numpy() & ~mismatch
    stays = by_hadm.loc[hadm[keep]].set_index(raw.index[keep])
    return raw.loc[keep], stays


def _icd_events(folder, adm, table: str, prefix: str, kind: str, report) -> pd.DataFrame:
    raw = read_table(folder, table)
    codes = raw["icd9_code"].str.strip().str.upper()
    report.add(f"{table.lower()}_missing_code", int(codes.isna().sum()))
    raw = raw.assign(icd9_code=codes)[codes.notna()]
    rows, stays = _join_admission(raw, adm, table, report)
    # Diagnoses and procedures are coded at discharge: not known before it.
    return _frame(stays["subject_id"], stays["dischtime"], prefix + rows["icd9_code"], kind)


def _drug_codes(rows: pd.DataFrame, by: str, report: ReadReport) -> pd.Series:
    ndc = rows["ndc"].str.strip()
    usable = ndc.str.fullmatch(r"\d{11}").fillna(False) & (ndc != "0" * 11)
    name = "DRUG/" + rows["drug"].str.strip()
    if by == "name":
        return name
    report.add("prescriptions_coded_by_name", int((~usable & name.notna()).sum()))
    return ("NDC/" + ndc).where(usable, name)


def _prescription_events(folder, adm, drug_codes: str, report) -> pd.DataFrame:
    raw = read_table(folder, "PRESCRIPTIONS")
    start = _times(raw, "startdate", required=False)
    report.add("prescriptions_missing_startdate", int(start.isna().sum()))
    raw = raw.assign(startdate=start)[start.notna()]
    rows, stays = _join_admission(raw, adm, "PRESCRIPTIONS", report)
    code = _drug_codes(rows, drug_codes, report)
    report.add("prescriptions_missing_code", int(code.isna().sum()))
    keep = code.notna()
    rows, stays, code = rows[keep], stays[keep], code[keep]
    # Known by the end of its start day at the latest, and never outside its admission.
    when = rows["startdate"] + ONE_DAY
    clipped = (when < stays["admittime"]) | (when > stays["dischtime"])
    report.add("prescriptions_clipped_to_admission", int(clipped.sum()))
    when = when.clip(lower=stays["admittime"], upper=stays["dischtime"])
    return _frame(stays["subject_id"], when, code, "drug")


def read(
    path: str | Path,
    *,
    tables: tuple[str, ...] = OPTIONAL_TABLES,
    drug_codes: Literal["ndc", "name"] = "ndc",
) -> HistorySet:
    """Read a MIMIC-III folder into a :class:`HistorySet` (one clock per subject).

    Parameters
    ----------
    path : str or Path
        The folder holding the tables (e.g. ``shared/data/mimic3demo``).
    tables : tuple of str, default=("DIAGNOSES_ICD", "PROCEDURES_ICD", "PRESCRIPTIONS")
        Which code tables to read beside ADMISSIONS and PATIENTS (always read).
    drug_codes : {"ndc", "name"}, default="ndc"
        ``"ndc"``: ``NDC/<11 digits>`` where the NDC is usable, else ``DRUG/<name>``;
        ``"name"``: always ``DRUG/<name>``.

    Raises
    ------
    DataError
        Naming the file, line and field at fault.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder of MIMIC-III tables")
    unknown = sorted(set(tables) - set(OPTIONAL_TABLES))
    if unknown:
        raise ValueError(f"tables: unknown {unknown}; choose from {list(OPTIONAL_TABLES)}")
    if drug_codes not in ("ndc", "name"):
        raise ValueError(f"drug_codes must be 'ndc' or 'name', got {drug_codes!r}")
    report = ReadReport(source=str(folder))
    adm = _admissions(folder, report)
    parts = _visit_events(adm, report) + _patient_events(folder, adm, report)
    if "DIAGNOSES_ICD" in tables:
        parts.append(_icd_events(folder, adm, "DIAGNOSES_ICD", "ICD9DX/", "dx", report))
    if "PROCEDURES_ICD" in tables:
        parts.append(_icd_events(folder, adm, "PROCEDURES_ICD", "ICD9PX/", "px", report))
    if "PRESCRIPTIONS" in tables:
        parts.append(_prescription_events(folder, adm, drug_codes, report))
    return _assemble(parts, adm, report, str(folder))


def _assemble(parts, adm: pd.DataFrame, report: ReadReport, where: str) -> HistorySet:
    origin = adm.groupby("subject_id")["admittime"].min()
    raw = pd.concat([p for p in parts if len(p)], ignore_index=True)
    raw["time"] = (raw["when"] - origin.reindex(raw["subject_id"]).to_numpy()) / HOUR
    raw = raw.sort_values(["subject_id", "time", "rank", "code"], kind="stable")
    events = validate_events(raw.assign(value=np.nan), where=where)
    visits = visits_from_events(events, where=where)
    check_history(events, visits, report)
    logger.info("%s", report.summary())
    return HistorySet(events=events, visits=visits, origin=origin.rename("origin"), report=report)
