"""medseq.sources.physionet2019.read on the staged Challenge 2019 archives (SOURCE.md counts)."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest

from data_slices import unpack_physionet2019
from medseq.paths import dataset_dir
from medseq.sources import physionet2019


@pytest.fixture(scope="module")
def set_b():
    return physionet2019.read(dataset_dir("physionet2019") / "training_setB.tar.gz")


@pytest.fixture(scope="module")
def some_of_a(tmp_path_factory):
    """The first 400 patients of set A, unpacked into the official folder layout."""
    out = tmp_path_factory.mktemp("sepsis")
    return unpack_physionet2019(out, 400, scan=400, sets="A") / "training_setA"


def test_set_b_matches_source_md(set_b):
    labels, counts = set_b.labels, set_b.report.counts
    assert len(set_b.static) == 18_000 and len(labels) == 685_980
    per_patient = labels.groupby("subject_id")["sepsis_label"].max()
    assert int(per_patient.sum()) == 1_020 and int(labels["sepsis_label"].sum()) == 9_638
    assert counts["first_row_labelled"] == 190
    assert counts["first_iculos_after_1"] == 1_170
    assert counts["descriptor_missing:Unit1"] == counts["descriptor_missing:Unit2"] == 5_488
    # SOURCE.md: FiO2 from -50 to 4000 in set B, stored as a fraction: dropped and counted.
    assert counts["implausible_value:FiO2"] > 0
    fio2 = set_b.events.loc[set_b.events["code"] == "FiO2", "value"]
    assert fio2.between(0.0, 1.0).all()
    # Nothing else is dropped: the events are exactly the measured, plausible cells.
    assert not any(k.startswith(("bad_row", "blank_line", "iculos_gap")) for k in counts)
    assert counts.get("label_reverts", 0) == 0 and counts.get("label_hours_over_10", 0) == 0
    assert set_b.static.index.min() > 100_000 and (set_b.static.index % 10 != 0).all()


def test_set_b_events_are_the_file_cells(set_b):
    """Patient p100001 re-read by hand: every non-NaN cell of the 34 variables is an event."""
    with tarfile.open(dataset_dir("physionet2019") / "training_setB.tar.gz") as tar:
        text = tar.extractfile("training_setB/p100001.psv").read().decode()
    lines = [line.split("|") for line in text.splitlines()[1:]]
    expected = [
        (float(cells[39]), name, float(cells[j]))
        for cells in lines
        for j, name in enumerate(physionet2019.VARIABLES)
        if cells[j] != "NaN"
    ]
    mine = set_b.events[set_b.events["subject_id"] == 100001]
    got = list(zip(mine["time"], mine["code"], mine["value"], strict=True))
    assert got == expected


def test_set_a_folder_has_no_etco2_and_late_starts(some_of_a):
    data = physionet2019.read(some_of_a)
    assert len(data.static) == 400 and (data.static["hospital"] == "A").all()
    assert data.report.counts["empty_column:EtCO2"] == len(data.labels)
    assert "EtCO2" not in set(data.events["code"])
    first = data.labels.groupby("subject_id")["iculos"].min()
    assert data.report.counts.get("first_iculos_after_1", 0) == int((first > 1).sum())
    assert np.isin(data.labels["sepsis_label"], (0, 1)).all()
