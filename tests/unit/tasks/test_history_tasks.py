"""Next-visit and mortality tasks on the MIMIC demo, and their subject-level split."""

from __future__ import annotations

import numpy as np
import pytest

from medseq.datasets.registry import get_dataset
from medseq.experiment.config import ExperimentData
from medseq.paths import dataset_dir
from medseq.tasks import histories


@pytest.fixture(scope="module")
def data():
    return get_dataset("mimic3").read(dataset_dir("mimic3demo"))


def test_next_visit_samples_and_labels(data):
    labels = histories.labels(data.history, "next_visit")
    # 14 subjects with >= 2 admissions: 11 x 1 + 2 x 2 + 1 x 14 next visits.
    assert labels.shape[0] == 29
    assert set(np.unique(labels.to_numpy())) == {0.0, 1.0}
    assert labels.index.min() // 1000 >= 10000 and (labels.index % 1000 >= 1).all()
    assert all(c.startswith("ICD9DX/") and len(c) <= len("ICD9DX/E878") for c in labels.columns)
    chapters = histories.labels(data.history, "next_visit_chapter")
    assert chapters.shape[0] == 29 and chapters.shape[1] <= 19
    # Each sample's chapters are its three-digit groups' chapters.
    row = labels.iloc[0]
    groups = [c for c in labels.columns if row[c] == 1]
    from medseq.sources.icd9 import chapter

    expected = {chapter(g + "0") for g in groups}  # a category plus a digit is a valid code
    assert {c for c in chapters.columns if chapters.iloc[0][c] == 1} == expected


def test_mortality_labels_use_only_stays_open_at_the_prediction_time(data):
    labels = histories.labels(data.history, "mortality")
    assert len(labels) == 89 and int(labels.sum()) == 31
    assert labels.attrs["excluded"] == {"stay_ended_before_prediction_time": 11}


@pytest.mark.parametrize("task", ["next_visit", "mortality"])
def test_subject_protocol_never_splits_a_subject(data, task):
    spec = get_dataset("mimic3")
    labels = spec.labels(task, data)
    config = ExperimentData(dataset="mimic3", task=task, cv_folds=3, protocol="subject")
    split = spec.protocol("subject")(config, data, labels)
    test_subjects = set(histories.subject_of(split.test, task))
    everything = set(split.test)
    for train, val in split.folds:
        tr, va = set(histories.subject_of(train, task)), set(histories.subject_of(val, task))
        assert not (tr & va) and not (tr & test_subjects) and not (va & test_subjects)
        assert everything | set(train) | set(val) == set(labels.index)
    again = spec.protocol("subject")(config, data, labels)
    assert np.array_equal(again.test, split.test)
