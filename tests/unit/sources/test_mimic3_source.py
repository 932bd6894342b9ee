"""The MIMIC-III reader on the real demo, and its errors on malformed tables."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pandas as pd
import pytest

from medseq.paths import dataset_dir
from medseq.schema import DataError
from medseq.sources import mimic3
from medseq.tasks.histories import visit_codes


@pytest.fixture(scope="module")
def demo_dir():
    return dataset_dir("mimic3demo")


@pytest.fixture(scope="module")
def demo(demo_dir):
    return mimic3.read(demo_dir)


def test_demo_counts_match_the_source_tables(demo, demo_dir):
    events, visits = demo.events, demo.visits
    assert demo.report.n_subjects == 100 and len(visits) == 129
    counts = events["code"].str.split("/").str[0].value_counts()
    assert counts["ICD9DX"] == 1761 and counts["ICD9PX"] == 506
    assert counts["ADMISSION"] == counts["DISCHARGE"] == 129
    n_rx = len(pd.read_csv(demo_dir / "PRESCRIPTIONS.csv.gz", usecols=["row_id"]))
    assert counts["NDC"] + counts["DRUG"] == n_rx  # none skipped in the demo
    assert demo.report.counts["prescriptions_coded_by_name"] == counts["DRUG"]
    # One deathtime lies a day after its discharge upstream: moved to the discharge.
    assert demo.report.counts["deathtime_clipped"] == 1
    assert (events["code"] == "MEDS_DEATH").sum() == 100  # all demo patients have died


def test_codes_sit_inside_their_visit_at_the_right_time(demo):
    codes = visit_codes(demo)
    in_visit = codes["code"].str.match(r"(ICD9DX|ICD9PX|NDC|DRUG)/")
    assert in_visit.sum() == demo.events["code"].str.match(r"(ICD9DX|ICD9PX|NDC|DRUG)/").sum()
    first = demo.visits.groupby("subject_id")["start"].min()
    assert (first == 0.0).all()  # hour 0 is the first admission
    merged = codes.merge(demo.visits, on=["subject_id", "visit"])
    dx = merged[merged["code"].str.startswith(("ICD9DX/", "ICD9PX/"))]
    assert np.allclose(dx["time"], dx["end"])  # coded at discharge
    # A known row: subject 10006's first admission, sepsis (99591) among its diagnoses.
    mine = codes[(codes["subject_id"] == 10006) & (codes["visit"] == 0)]
    assert "ICD9DX/99591" in set(mine["code"]) and "ADMISSION/EMERGENCY" in set(mine["code"])


def _small_copy(demo_dir, tmp_path, n_subjects=3, upper=False):
    """The demo's tables cut to a few subjects, written as plain CSV in ``tmp_path``."""
    admissions = pd.read_csv(demo_dir / "ADMISSIONS.csv.gz", dtype=str)
    keep = admissions["subject_id"].drop_duplicates().iloc[:n_subjects]
    for table in mimic3.COLUMNS:
        frame = pd.read_csv(demo_dir / f"{table}.csv.gz", dtype=str)
        frame = frame[frame["subject_id"].isin(keep)]
        if upper:
            frame.columns = [c.upper() for c in frame.columns]
        frame.to_csv(tmp_path / f"{table}.csv", index=False)
    return tmp_path


def test_plain_csv_and_upper_case_columns_read_the_same(demo_dir, tmp_path):
    lower_dir, upper_dir = tmp_path / "lower", tmp_path / "upper"
    lower_dir.mkdir()
    upper_dir.mkdir()
    lower = mimic3.read(_small_copy(demo_dir, lower_dir))
    upper = mimic3.read(_small_copy(demo_dir, upper_dir, upper=True))
    pd.testing.assert_frame_equal(lower.events, upper.events)
    assert lower.report.n_subjects == 3


def test_missing_table_and_column_are_named(demo_dir, tmp_path):
    folder = _small_copy(demo_dir, tmp_path)
    (folder / "PROCEDURES_ICD.csv").unlink()
    with pytest.raises(DataError, match="table PROCEDURES_ICD not found"):
        mimic3.read(folder)
    assert mimic3.read(folder, tables=("DIAGNOSES_ICD",)).report.n_subjects == 3
    frame = pd.read_csv(folder / "ADMISSIONS.csv", dtype=str).drop(columns=["dischtime"])
    frame.to_csv(folder / "ADMISSIONS.csv", index=False)
    with pytest.raises(DataError, match=r"ADMISSIONS\.csv: missing columns \['dischtime'\]"):
        mimic3.read(folder, tables=())


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("admittime", "2164-13-45 00:00:00", r"line 3: admittime must be a date-time"),
        ("hadm_id", "abc", r"line 3: hadm_id must be an integer id, got 'abc'"),
        ("dischtime", "1900-01-01 00:00:00", r"line 3: dischtime 1900-01-01 00:00:00 is before"),
    ],
)
def test_garbled_admission_rows_name_file_line_and_field(
    demo_dir, tmp_path, column, value, message
):
    folder = _small_copy(demo_dir, tmp_path)
    frame = pd.read_csv(folder / "ADMISSIONS.csv", dtype=str)
    frame.loc[frame.index[1], column] = value
    frame.to_csv(folder / "ADMISSIONS.csv", index=False)
    with pytest.raises(DataError, match=r"ADMISSIONS\.csv: " + message):
        mimic3.read(folder)


def test_rows_that_cannot_be_placed_are_counted(demo_dir, tmp_path):
    folder = _small_copy(demo_dir, tmp_path)
    dx = pd.read_csv(folder / "DIAGNOSES_ICD.csv", dtype=str)
    dx.loc[dx.index[0], "hadm_id"] = "1"  # no such admission
    dx.loc[dx.index[1], "icd9_code"] = None
    other = sorted(set(dx["subject_id"]) - {dx["subject_id"].iloc[2]})[0]
    dx.loc[dx.index[2], "subject_id"] = other  # its hadm_id belongs to someone else
    dx.to_csv(folder / "DIAGNOSES_ICD.csv", index=False)
    data = mimic3.read(folder)
    assert data.report.counts["diagnoses_icd_unknown_admission"] == 1
    assert data.report.counts["diagnoses_icd_missing_code"] == 1
    assert data.report.counts["diagnoses_icd_subject_mismatch"] == 1
    assert (data.events["code"].str.startswith("ICD9DX/")).sum() == len(dx) - 3


def test_gzip_is_read_like_plain_csv(demo_dir, tmp_path):
    folder = _small_copy(demo_dir, tmp_path)
    plain = mimic3.read(folder)
    for table in mimic3.COLUMNS:
        with (
            open(folder / f"{table}.csv", "rb") as src,
            gzip.open(folder / f"{table}.csv.gz", "wb") as dst,
        ):
            shutil.copyfileobj(src, dst)
        (folder / f"{table}.csv").unlink()
    pd.testing.assert_frame_equal(plain.events, mimic3.read(folder).events)
