"""A prediction time at every encounter of a class: several samples per subject, keyed by
(subject, prediction time), split by subject; on real Synthea FHIR R4 patients."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from medseq.datasets.event_tasks import EventTaskData, _labels, _subject_split
from medseq.tasks.cohort import build_task
from medseq.tasks.spec import CONFIG_TASKS, TaskSpec

CHECKUP = "http://snomed.info/sct|185349003"  # Synthea's wellness encounter type
EVERY = {
    "prediction_time": {"anchor": [CHECKUP], "occurrence": "every"},
    "cohort": {"min_age_years": 18},
    "label": {"codes": ["ENCOUNTER/EMER", "ENCOUNTER/IMP"], "within_hours": 4383},
    "observation": {"window_hours": 17532},
}


def test_every_anchor_event_gives_a_sample_and_its_own_label(synthea):
    ev = synthea.events
    built = build_task(ev, synthea.origin, TaskSpec.from_dict(EVERY))
    samples = built.samples
    assert samples["subject_id"].duplicated().any()
    assert samples.index.is_unique and (samples.index == np.arange(len(samples))).all()
    assert not samples.duplicated(["subject_id", "cutoff"]).any()
    # every kept prediction time is one of that subject's check-ups
    checkups = ev[ev["code"] == CHECKUP][["subject_id", "time"]].drop_duplicates()
    keys = set(zip(checkups["subject_id"], checkups["time"], strict=True))
    assert all(
        (s, t) in keys for s, t in zip(samples["subject_id"], samples["cutoff"], strict=True)
    )
    # labels per sample, from a plain loop over each (subject, time)
    for row, label in zip(samples.itertuples(), built.labels, strict=True):
        mine = ev[(ev["subject_id"] == row.subject_id) & ev["code"].isin(EVERY["label"]["codes"])]
        hit = ((mine["time"] > row.cutoff) & (mine["time"] <= row.cutoff + 4383)).any()
        assert int(hit) == label
    # a subject's samples can disagree: the label belongs to the prediction time
    per_subject = built.labels.groupby(samples["subject_id"]).agg(["min", "max"])
    assert (per_subject["min"] != per_subject["max"]).any()
    # the cohort table counts subjects, then prediction times, then samples
    table = built.cohort.set_index("step")
    assert (
        table.loc["prediction times", "n_remaining"]
        > table.loc["no_prediction_time", "n_remaining"]
    )
    assert int(built.cohort["n_remaining"].iloc[-1]) == len(samples)
    assert int(built.cohort["n_subjects"].iloc[-1]) == samples["subject_id"].nunique()
    # age is taken at each prediction time
    np.testing.assert_array_less(17.999, samples["age_years"].to_numpy())


def test_splits_keep_every_prediction_time_of_a_subject_on_one_side(synthea):
    CONFIG_TASKS.register("every_checkup", TaskSpec.from_dict(EVERY))
    data = EventTaskData(events=synthea.events, origin=synthea.origin, report=synthea.report)
    labels = _labels("every_checkup", data)
    subject = data.samples["subject_id"]
    config = SimpleNamespace(split_seed=0, cv_folds=3, val_fraction=0.2)
    split = _subject_split(config, data, labels)
    test_subjects = set(subject.loc[split.test])
    assert test_subjects
    every = set()
    for train, val in split.folds:
        a, b = set(subject.loc[train]), set(subject.loc[val])
        assert not a & b and not (a | b) & test_subjects
        every |= set(train) | set(val)
    # no sample is lost: each is in the test part or in some fold
    assert every | set(split.test) == set(labels.index)
    assert pd.Index(split.test).is_unique
    # stratified on the subject having a positive sample: both kinds in the test part
    has_positive = labels.groupby(subject).max()
    assert 0 < has_positive.loc[list(test_subjects)].sum() < len(test_subjects)
