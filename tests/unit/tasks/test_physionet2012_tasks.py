"""Labels of the PhysioNet 2012 tasks, on a hand-built set."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from medseq.schema import ReadReport
from medseq.sources.physionet2012 import PhysioNet2012Set
from medseq.tasks.physionet2012 import length_of_stay_labels, mortality_labels


def make_set() -> PhysioNet2012Set:
    index = pd.Index([11, 12, 13], name="subject_id")
    outcomes = pd.DataFrame(
        {
            "saps_i": [1.0, 2.0, 3.0],
            "sofa": [1.0, 2.0, 3.0],
            "length_of_stay": [5.0, np.nan, 0.0],
            "survival": [np.nan, 3.0, np.nan],
            "in_hospital_death": np.array([0, 1, 0], dtype=np.int64),
        },
        index=index,
    )
    empty = pd.DataFrame({"subject_id": [], "time": [], "code": [], "value": []})
    return PhysioNet2012Set(empty, pd.DataFrame(index=index), outcomes, ReadReport("test"))


def test_mortality_labels():
    labels = mortality_labels(make_set())
    assert labels.dtype == np.int64 and labels.name == "in_hospital_death"
    assert labels.index.name == "subject_id"
    assert labels.to_dict() == {11: 0, 12: 1, 13: 0}
    assert labels.attrs["excluded"] == {}


def test_length_of_stay_excludes_missing_and_counts_them(caplog):
    with caplog.at_level(logging.INFO):
        labels = length_of_stay_labels(make_set())
    assert labels.dtype == np.float64 and labels.name == "length_of_stay"
    assert labels.to_dict() == {11: 5.0, 13: 0.0}
    assert labels.attrs["excluded"] == {"missing_length_of_stay": 1}
    assert "excluded 1 of 3 subjects" in caplog.text
