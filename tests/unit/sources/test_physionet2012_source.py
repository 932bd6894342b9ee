"""medseq.sources.physionet2012.read on small synthetic sets written to tmp_path."""

from __future__ import annotations

import logging
import re
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medseq.schema import DataError
from medseq.sources import physionet2012
from medseq.sources.physionet2012 import DESCRIPTORS, VARIABLES, read

DESC = "00:00,Age,54\n00:00,Gender,0\n00:00,Height,-1\n00:00,ICUType,4\n00:00,Weight,80\n"
OUTCOMES_HEADER = "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n"


def record(rid: int, body: str = "", *, descriptors: str = DESC) -> str:
    return f"Time,Parameter,Value\n00:00,RecordID,{rid}\n{descriptors}{body}"


def write_set(
    root: Path,
    records: dict[int, str],
    *,
    outcomes: str | None = None,
    name: str = "a",
) -> Path:
    folder = root / f"set-{name}"
    folder.mkdir()
    for rid, text in records.items():
        (folder / f"{rid}.txt").write_bytes(text.encode())
    if outcomes is None:
        outcomes = "".join(f"{rid},10,2,7,30,0\n" for rid in records)
    (root / f"Outcomes-{name}.txt").write_text(OUTCOMES_HEADER + outcomes)
    return folder


def where(folder: Path, rid: int, line: int) -> str:
    """The start of an error message naming ``file:line``, as a regex."""
    return re.escape(f"{folder}/{rid}.txt:{line}: ")


def test_reads_events_static_and_outcomes(tmp_path):
    body = "00:07,HR,73\n00:07,Temp,35.1\n01:37,HR,60\n48:00,MAP,80.5\n"
    folder = write_set(
        tmp_path,
        {2: record(2, body), 1: record(1, "00:30,GCS,15\n")},
        outcomes="1,6,1,5,-1,0\n2,-1,3,8,12,1\n",
    )
    data = read(folder)
    events = data.events
    assert list(events.columns) == ["subject_id", "time", "code", "value"]
    assert events["subject_id"].dtype == np.int64 and events["time"].dtype == np.float64
    assert events["subject_id"].tolist() == [1, 2, 2, 2, 2]
    np.testing.assert_allclose(events["time"], [0.5, 7 / 60, 7 / 60, 97 / 60, 48.0])
    assert events["code"].tolist() == ["GCS", "HR", "Temp", "HR", "MAP"]
    assert events.loc[events["subject_id"] == 2, "code"].tolist() == ["HR", "Temp", "HR", "MAP"]
    assert events["value"].tolist() == [15.0, 73.0, 35.1, 60.0, 80.5]
    assert list(data.static.columns) == list(DESCRIPTORS)
    assert data.static.index.name == "subject_id" and data.static.index.tolist() == [1, 2]
    assert data.static.loc[1].tolist()[:2] == [54.0, 0.0]
    assert np.isnan(data.static.loc[1, "Height"])
    assert data.outcomes.loc[2, "in_hospital_death"] == 1
    assert data.outcomes["in_hospital_death"].dtype == np.int64
    assert np.isnan(data.outcomes.loc[2, "saps_i"]) and np.isnan(data.outcomes.loc[1, "survival"])
    assert data.outcomes.loc[2, "survival"] == 12.0
    assert data.report.n_subjects == 2 and data.report.n_events == 5
    assert data.report.counts == {
        "descriptor_missing:Height": 2,
        "outcome_missing:saps_i": 1,
        "outcome_missing:survival": 1,
    }


def test_tarball_reads_like_the_folder(tmp_path):
    folder = write_set(tmp_path, {1: record(1, "00:07,HR,73\n"), 2: record(2, "01:00,K,4\n")})
    archive = tmp_path / "set-a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="set-a")
    from_tar, from_folder = read(archive), read(folder)
    pd.testing.assert_frame_equal(from_tar.events, from_folder.events)
    pd.testing.assert_frame_equal(from_tar.static, from_folder.static)
    pd.testing.assert_frame_equal(from_tar.outcomes, from_folder.outcomes)
    assert from_tar.report.counts == from_folder.report.counts


def test_empty_parameter_is_skipped_and_counted(tmp_path):
    folder = write_set(tmp_path, {1: record(1, "10:45,,1.9\n10:45,HR,80\n")})
    data = read(folder)
    assert data.events["code"].tolist() == ["HR"]
    assert data.report.counts["empty_parameter"] == 1


def test_same_time_repeats_are_averaged_but_urine_is_summed(tmp_path):
    body = "01:00,HR,80\n01:00,HR,90\n01:00,HR,100\n01:00,Urine,400\n01:00,Urine,0\n02:00,HR,7\n"
    data = read(write_set(tmp_path, {1: record(1, body)}))
    assert data.events["code"].tolist() == ["HR", "Urine", "HR"]
    assert data.events["value"].tolist() == [90.0, 400.0, 7.0]
    assert data.report.counts["duplicate_time_merged"] == 3


@pytest.mark.parametrize(
    ("row", "key"),
    [
        ("01:00,HR,-5", "implausible_value:HR"),
        ("01:00,Weight,0", "implausible_value:Weight"),
        ("01:00,Temp,-17.8", "implausible_value:Temp"),
        ("01:00,pH,735", "implausible_value:pH"),
        ("01:00,GCS,7.5", "implausible_value:GCS"),
        ("01:00,FiO2,50", "implausible_value:FiO2"),
    ],
)
def test_impossible_values_are_dropped_and_counted(tmp_path, row, key):
    data = read(write_set(tmp_path, {1: record(1, f"{row}\n01:00,HR,0\n")}))
    assert data.events["code"].tolist() == ["HR"] and data.events["value"].tolist() == [0.0]
    assert data.report.counts == {key: 1, "descriptor_missing:Height": 1}


def test_unknown_parameter_is_skipped_counted_and_logged(tmp_path, caplog):
    folder = write_set(tmp_path, {1: record(1, "01:00,Foo,3\n01:00,HR,80\n01:30,Foo,4\n")})
    with caplog.at_level(logging.WARNING):
        data = read(folder)
    assert data.events["code"].tolist() == ["HR"]
    assert data.report.counts["unknown_parameter"] == 2
    assert "['Foo']" in caplog.text and "1.txt:8" in caplog.text


def test_descriptors_repeated_absent_and_implausible(tmp_path):
    descriptors = "00:00,Age,54\n00:00,Age,60\n00:00,Height,431.8\n00:00,ICUType,4\n"
    folder = write_set(tmp_path, {1: record(1, "01:00,HR,80\n", descriptors=descriptors)})
    data = read(folder)
    static = data.static.loc[1]
    assert static["Age"] == 54.0 and static[["Gender", "Height", "Weight"]].isna().all()
    assert data.report.counts == {
        "duplicate_descriptor": 1,
        "descriptor_absent:Gender": 1,
        "descriptor_absent:Weight": 1,
        "descriptor_implausible:Height": 1,
    }


def test_first_weight_at_zero_is_the_descriptor_later_ones_are_events(tmp_path):
    descriptors = "00:00,Age,35\n00:00,Gender,1\n00:00,Height,170\n00:00,ICUType,4\n"
    body = "00:00,Weight,70.8\n00:00,Weight,70.4\n05:00,Weight,70.1\n"
    data = read(write_set(tmp_path, {1: record(1, body, descriptors=descriptors)}))
    assert data.static.loc[1, "Weight"] == 70.8
    assert data.events["value"].tolist() == [70.4, 70.1]
    assert data.report.counts == {}


def test_bad_header_is_rejected_with_file_and_line(tmp_path):
    folder = write_set(tmp_path, {7: "Time,Param,Value\n00:00,RecordID,7\n"})
    expected = "bad header: expected 'Time,Parameter,Value', got 'Time,Param,Value'"
    with pytest.raises(DataError, match=where(folder, 7, 1) + re.escape(expected)):
        read(folder)


@pytest.mark.parametrize(
    ("row", "kind", "message"),
    [
        ("01:00,HR,abc", "value", "bad value: expected a finite number, got 'abc'"),
        ("01:00,HR,nan", "value", "bad value: expected a finite number, got 'nan'"),
        ("01:00,HR,", "value", "bad value: expected a finite number, got ''"),
        ("1:5,HR,80", "time", "bad time: expected 'hh:mm' with minutes 00-59, got '1:5'"),
        ("10:60,HR,80", "time", "bad time: expected 'hh:mm' with minutes 00-59, got '10:60'"),
        ("1045,HR,80", "time", "bad time: expected 'hh:mm' with minutes 00-59, got '1045'"),
        ("01:00,H R!,80", "parameter", "bad parameter: expected a name of letters, digits, "),
        ("01:00,HR,80,1", "field_count", "bad row: expected 3 comma-separated fields "),
        ("01:00 HR 80", "field_count", "bad row: expected 3 comma-separated fields "),
    ],
)
def test_garbled_rows_raise_or_are_counted(tmp_path, caplog, row, kind, message):
    body = f"00:30,HR,70\n{row}\n02:00,HR,75\n"
    folder = write_set(tmp_path, {5: record(5, "00:10,HR,1\n"), 9: record(9, body)})
    with pytest.raises(DataError, match=where(folder, 9, 9) + re.escape(message)):
        read(folder)
    skipped = read(folder, on_bad_row="skip")
    assert skipped.report.counts[f"bad_row:{kind}"] == 1
    assert skipped.events["value"].tolist() == [1.0, 70.0, 75.0]
    with caplog.at_level(logging.WARNING):
        warned = read(folder, on_bad_row="warn")
    assert warned.report.counts == skipped.report.counts
    assert f"{folder}/9.txt:9" in caplog.text and f"garbled rows (bad {kind})" in caplog.text


def test_the_first_garbled_row_is_named(tmp_path):
    folder = write_set(tmp_path, {1: record(1, "01:00,HR,x\n"), 2: record(2, "1:00:00,HR,1\n")})
    with pytest.raises(DataError, match=where(folder, 1, 8) + "bad value"):
        read(folder)


def test_missing_recordid_row(tmp_path):
    folder = write_set(tmp_path, {3: "Time,Parameter,Value\n" + DESC})
    message = "missing RecordID row: expected '00:00,RecordID,3' after the header"
    with pytest.raises(DataError, match=re.escape(f"{folder}/3.txt: {message}")):
        read(folder)


def test_recordid_not_matching_file_name(tmp_path):
    folder = write_set(tmp_path, {3: record(4)})
    message = "RecordID does not match the file name: expected 3, got 4"
    with pytest.raises(DataError, match=where(folder, 3, 2) + re.escape(message)):
        read(folder)


def test_second_recordid_row(tmp_path):
    folder = write_set(tmp_path, {3: record(3, "00:00,RecordID,3\n")})
    with pytest.raises(DataError, match=where(folder, 3, 8) + "second RecordID row"):
        read(folder)


def test_record_file_name_must_be_the_record_id(tmp_path):
    folder = write_set(tmp_path, {3: record(3)})
    (folder / "notes.txt").write_text("Time,Parameter,Value\n")
    with pytest.raises(DataError, match=re.escape("expected a record file named <RecordID>.txt")):
        read(folder)


def test_same_record_twice_in_an_archive(tmp_path):
    archive = tmp_path / "set-a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("set-a/3.txt", "copy/3.txt"):
            path = tmp_path / "r.txt"
            path.write_text(record(3))
            tar.add(path, arcname=name)
    (tmp_path / "Outcomes-a.txt").write_text(OUTCOMES_HEADER + "3,1,1,1,-1,0\n")
    message = f"{archive}/copy/3.txt: RecordID 3 also in {archive}/set-a/3.txt"
    with pytest.raises(DataError, match=re.escape(message)):
        read(archive)


def test_empty_set_folder(tmp_path):
    folder = write_set(tmp_path, {})
    with pytest.raises(DataError, match=re.escape(f"{folder}: no <RecordID>.txt record files")):
        read(folder)


def test_record_without_outcome_row(tmp_path):
    folder = write_set(tmp_path, {3: record(3), 4: record(4)}, outcomes="3,1,1,1,-1,0\n")
    message = "no outcome row for 1 record(s), e.g. RecordID 4 ("
    with pytest.raises(DataError, match=re.escape(message)):
        read(folder)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("RecordID,SAPS,SOFA\n3,1,1\n", ":1: bad header: expected 'RecordID,SAPS-I,"),
        (OUTCOMES_HEADER + "3,1,x,1,-1,0\n", ":2: column SOFA: expected a number, got 'x'"),
        (OUTCOMES_HEADER + "3,1,1,1,-1,2\n", ":2: In-hospital_death: expected 0 or 1, got 2"),
        (OUTCOMES_HEADER + "3,1,1,1,-1,0\n3,1,1,1,-1,0\n", ":3: RecordID 3 appears twice"),
        (OUTCOMES_HEADER + "3.5,1,1,1,-1,0\n", ":2: RecordID: expected an integer, got 3.5"),
        (
            OUTCOMES_HEADER + "3,1,1,1,-1,0,9\n",
            ":2: expected 6 comma-separated fields, got 7: '3,1,1,1,-1,0,9'",
        ),
    ],
)
def test_garbled_outcomes_file(tmp_path, text, message):
    folder = write_set(tmp_path, {3: record(3)})
    (tmp_path / "Outcomes-a.txt").write_text(text)
    with pytest.raises(DataError, match=re.escape(f"Outcomes-a.txt{message}")):
        read(folder)


def test_outcome_rows_without_record_are_counted(tmp_path):
    folder = write_set(tmp_path, {3: record(3)}, outcomes="3,1,1,1,-1,0\n8,1,1,1,-1,1\n")
    data = read(folder)
    assert data.outcomes.index.tolist() == [3]
    assert data.report.counts["outcome_without_record"] == 1


def test_outcomes_path_can_be_given(tmp_path):
    folder = write_set(tmp_path, {3: record(3)})
    moved = tmp_path / "labels.txt"
    (tmp_path / "Outcomes-a.txt").rename(moved)
    with pytest.raises(FileNotFoundError, match="pass outcomes="):
        read(folder)
    assert read(folder, outcomes=moved).outcomes.index.tolist() == [3]


def test_unusual_folder_name_needs_outcomes(tmp_path):
    folder = tmp_path / "stays"
    folder.mkdir()
    with pytest.raises(ValueError, match="cannot find its outcomes file"):
        read(folder)


def test_blank_lines_crlf_and_other_files_are_tolerated(tmp_path):
    text = record(1, "01:00,HR,80\n\n02:00,HR,81\n").replace("\n", "\r\n") + "\r\n"
    folder = write_set(tmp_path, {1: text})
    (folder / "README").write_text("not a record")
    data = read(folder)
    assert data.events["value"].tolist() == [80.0, 81.0]
    assert data.report.counts["blank_line"] == 2
    assert data.report.counts["ignored_file"] == 1


def test_rows_out_of_time_order_are_sorted(tmp_path):
    data = read(write_set(tmp_path, {1: record(1, "05:00,HR,2\n01:00,HR,1\n05:00,K,3\n")}))
    assert data.events["value"].tolist() == [1.0, 2.0, 3.0]


def test_stay_without_time_series_is_kept(tmp_path):
    data = read(write_set(tmp_path, {1: record(1), 2: record(2, "01:00,HR,80\n")}))
    assert data.static.index.tolist() == [1, 2] and data.outcomes.index.tolist() == [1, 2]
    assert data.events["subject_id"].tolist() == [2]


def test_policy_and_paths_are_checked(tmp_path):
    folder = write_set(tmp_path, {1: record(1)})
    with pytest.raises(ValueError, match=r"on_bad_row must be one of \('raise', 'warn', 'skip'\)"):
        read(folder, on_bad_row="ignore")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="no such folder or archive"):
        read(tmp_path / "set-b", outcomes=tmp_path / "Outcomes-a.txt")
    fake = tmp_path / "set-a.tar.gz"
    fake.write_bytes(b"not an archive")
    with pytest.raises(DataError, match=r"expected a set folder or a \.tar\.gz archive"):
        read(fake)


def test_constants_match_the_contract():
    assert len(VARIABLES) == 37 and len(set(VARIABLES)) == 37
    assert DESCRIPTORS == ("Age", "Gender", "Height", "ICUType", "Weight")
    assert set(physionet2012.VALID_RANGES) == set(VARIABLES) | set(DESCRIPTORS)
    assert all(low < high for low, high in physionet2012.VALID_RANGES.values())
