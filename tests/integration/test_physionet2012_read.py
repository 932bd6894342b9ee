"""medseq.sources.physionet2012.read on the real sets A and B (shared/data/physionet2012)."""

from __future__ import annotations

import tarfile

import numpy as np
import pandas as pd

from medseq.sources import physionet2012
from medseq.sources._download import sha256_file
from medseq.tasks.physionet2012 import length_of_stay_labels, mortality_labels

# Rows of a set that are neither events nor static descriptors: the reason keys that drop a
# row (see the module docstring of medseq.sources.physionet2012).
ROW_DROPS = (
    "blank_line",
    "bad_row:",
    "empty_parameter",
    "unknown_parameter",
    "implausible_value:",
    "duplicate_time_merged",
    "duplicate_descriptor",
)


def data_rows(archive) -> int:
    """Rows below the header of every record in the archive, counted independently."""
    with tarfile.open(archive) as tar:
        return sum(
            tar.extractfile(m).read().count(b"\n") - 1
            for m in tar
            if m.isfile() and m.name.endswith(".txt")
        )


def check_counts_add_up(data, rows_in_files: int) -> None:
    counts = data.report.counts
    dropped = sum(n for key, n in counts.items() if key.startswith(ROW_DROPS))
    absent = sum(n for key, n in counts.items() if key.startswith("descriptor_absent:"))
    descriptors = len(physionet2012.DESCRIPTORS) * data.report.n_subjects - absent
    record_ids = data.report.n_subjects
    assert rows_in_files == data.report.n_events + record_ids + descriptors + dropped


def check_contract(data) -> None:
    events = data.events
    assert list(events.columns) == ["subject_id", "time", "code", "value"]
    assert events["subject_id"].dtype == np.int64 and events["time"].dtype == np.float64
    assert events["value"].dtype == np.float64
    assert pd.api.types.is_string_dtype(events["code"])
    assert set(events["code"].unique()) <= set(physionet2012.VARIABLES)
    order = events[["subject_id", "time"]].to_numpy()
    assert (np.diff(order[:, 0]) >= 0).all()
    same = np.diff(order[:, 0]) == 0
    assert (np.diff(order[:, 1])[same] >= 0).all()
    assert events["time"].between(0, 48).all() and np.isfinite(events["value"]).all()
    assert list(data.static.columns) == list(physionet2012.DESCRIPTORS)
    assert (data.static.dtypes == np.float64).all() and data.static.index.name == "subject_id"
    assert data.outcomes.index.equals(data.static.index)
    assert data.outcomes["in_hospital_death"].dtype == np.int64
    assert not events.duplicated(["subject_id", "time", "code"]).any()


def test_set_a(set_a, physionet2012_dir):
    assert set_a.report.n_subjects == 4000 and len(set_a.static) == 4000
    assert int(mortality_labels(set_a).sum()) == 554
    check_contract(set_a)
    # SOURCE.md: 1,753,980 observations excluding RecordID; 20,000 are descriptor rows.
    counts = set_a.report.counts
    dropped = sum(n for key, n in counts.items() if key.startswith(ROW_DROPS))
    assert set_a.report.n_events == 1_753_980 - 20_000 - dropped == 1_729_936
    check_counts_add_up(set_a, data_rows(physionet2012_dir / "set-a.tar.gz"))
    assert counts["duplicate_time_merged"] == 3667
    assert counts["implausible_value:Temp"] == 129 and counts["implausible_value:Weight"] == 232
    assert counts["descriptor_missing:Height"] == 1894
    assert len(length_of_stay_labels(set_a)) == 4000 - 60


def test_set_b(set_b, physionet2012_dir):
    assert set_b.report.n_subjects == 4000
    assert int(mortality_labels(set_b).sum()) == 568
    check_contract(set_b)
    assert set_b.report.n_events == 1_734_462
    check_counts_add_up(set_b, data_rows(physionet2012_dir / "set-b.tar.gz"))
    assert len(length_of_stay_labels(set_b)) == 4000 - 54


def test_extracted_folder_reads_like_the_tarball(set_a, physionet2012_dir, tmp_path):
    with tarfile.open(physionet2012_dir / "set-a.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    (tmp_path / "Outcomes-a.txt").write_bytes((physionet2012_dir / "Outcomes-a.txt").read_bytes())
    folder = physionet2012.read(tmp_path / "set-a")
    pd.testing.assert_frame_equal(folder.events, set_a.events)
    pd.testing.assert_frame_equal(folder.static, set_a.static)
    pd.testing.assert_frame_equal(folder.outcomes, set_a.outcomes)
    assert folder.report.counts == set_a.report.counts


def test_pinned_outcomes_hashes_match_the_staged_files(physionet2012_dir):
    for name in ("Outcomes-a.txt", "Outcomes-b.txt"):
        assert sha256_file(physionet2012_dir / name) == physionet2012.SHA256[name]
