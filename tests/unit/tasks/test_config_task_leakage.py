"""No leakage by construction: nothing at or after the prediction time reaches the inputs.

Every event at or after each sample's prediction time is removed, or moved far into the
future with its code and value changed; the visit tensors and the baseline's count matrix
of the same samples must stay byte for byte the same, and so must the fitted featurizer.
With a prediction time at every encounter, this is done for every prediction time: the
samples are taken by rank (each subject's k-th prediction time), and the future of each
subject's k-th time is changed while the inputs of those samples are compared.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medseq.datasets.event_tasks import EventTaskData, _fit, _labels, _transform
from medseq.schema import DataError
from medseq.tasks import inputs as task_inputs
from medseq.tasks.cohort import build_task, prediction_times
from medseq.tasks.spec import CONFIG_TASKS, TaskSpec

TASKS = {
    "leak_acute": {
        "prediction_time": {"date": "2016-01-01T00:00:00Z"},
        "label": {"codes": ["ENCOUNTER/EMER", "ENCOUNTER/IMP"], "within_hours": 26298},
        "observation": {"window_hours": 26298},
    },
    "leak_death": {
        "prediction_time": {"anchor": ["ENCOUNTER/AMB"], "offset_hours": 12},
        "label": {"death": True, "within_hours": 87660, "censored": "negative"},
    },
    "leak_every_checkup": {
        "prediction_time": {
            "anchor": ["http://snomed.info/sct|185349003"],
            "occurrence": "every",
        },
        "label": {"codes": ["ENCOUNTER/EMER", "ENCOUNTER/IMP"], "within_hours": 4383},
        "observation": {"window_hours": 17532},
    },
}


def _after_cutoff(events: pd.DataFrame, samples: pd.DataFrame) -> np.ndarray:
    cutoff = samples.set_index("subject_id")["cutoff"]
    known = events["subject_id"].isin(cutoff.index).to_numpy()
    at_or_after = events["time"].to_numpy() >= cutoff.reindex(events["subject_id"]).to_numpy()
    return known & at_or_after


def _perturbed(events: pd.DataFrame, samples: pd.DataFrame, how: str) -> pd.DataFrame:
    late = _after_cutoff(events, samples)
    if how == "remove":
        return events[~late].reset_index(drop=True)
    out = events.copy()
    out.loc[late, "time"] = out.loc[late, "time"] + 1e6
    out.loc[late, "code"] = "http://loinc.org|" + out.loc[late, "code"].str[::-1]
    out.loc[late, "value"] = 123.0
    extra = pd.DataFrame(  # a brand-new code and a death, just after each prediction time
        {
            "subject_id": samples["subject_id"].to_numpy(),
            "time": samples["cutoff"].to_numpy(),
            "code": "LEAK/answer",
            "value": 1.0,
        }
    )
    return pd.concat([out, extra], ignore_index=True).sort_values(["subject_id", "time"])


def _inputs(events: pd.DataFrame, samples: pd.DataFrame, spec: TaskSpec, featurizer, columns):
    inputs = task_inputs.input_events(events, samples)
    history = task_inputs.as_history(inputs, samples, spec.observation.visit_hours)
    arrays = featurizer.transform(history, task_inputs.as_sample_keyed(samples))
    arrays["counts"] = task_inputs.code_counts(inputs, samples.index.to_numpy(), columns)
    return arrays, history


@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("how", ["remove", "move_and_change"])
def test_events_after_the_prediction_time_change_no_input_byte(synthea, task, how):
    spec = TaskSpec.from_dict(TASKS[task])
    CONFIG_TASKS.register(task, spec)
    data = EventTaskData(events=synthea.events, origin=synthea.origin, report=synthea.report)
    labels = _labels(task, data)
    samples = data.samples
    ids = labels.index.to_numpy()
    train = ids[: len(ids) // 2]
    featurizer = _fit({"min_count": 1}, data, train)
    rank = samples.groupby("subject_id").cumcount().to_numpy()
    if task == "leak_every_checkup":
        assert rank.max() >= 5  # many prediction times per subject
    n_future = 0
    for k in np.unique(rank):
        group = samples[rank == k]
        gids = group.index.to_numpy()
        before = _transform(featurizer, data, gids)
        before["counts"] = task_inputs.code_counts(data.history.events, gids, data.count_columns)
        changed = _perturbed(synthea.events, group, how)
        n_future += int(_after_cutoff(synthea.events, group).sum())
        after, history = _inputs(changed, group, spec, featurizer, data.count_columns)
        for name in before:
            assert before[name].dtype == after[name].dtype
            assert before[name].tobytes() == after[name].tobytes(), (name, k)
    assert n_future > 1000  # the future was large
    if task == "leak_every_checkup":
        return
    # prediction times are found again without the future (first anchor, fixed date)
    again = prediction_times(changed, synthea.origin, spec.prediction_time)
    np.testing.assert_array_equal(again.loc[ids].to_numpy(), samples.loc[ids, "cutoff"].to_numpy())
    refit = type(featurizer)(task, code_prefixes=featurizer.code_prefixes, min_count=1)
    refit.fit(history, task_inputs.as_sample_keyed(samples.loc[train]))
    assert refit.state_dict() == featurizer.state_dict()
    # and the future did carry the answer: the labels on the changed events differ
    if how == "remove" and spec.label.censored == "exclude":  # nobody is followed up now
        with pytest.raises(DataError, match="cohort is empty"):
            build_task(changed, synthea.origin, spec)
    elif how == "remove":  # censored count as negatives: every death is gone
        assert labels.sum() > 0
        assert build_task(changed, synthea.origin, spec).labels.sum() == 0


def test_inputs_hold_nothing_at_or_after_the_prediction_time(synthea):
    spec = TaskSpec.from_dict(TASKS["leak_acute"])
    built = build_task(synthea.events, synthea.origin, spec)
    inputs = task_inputs.input_events(synthea.events, built.samples)
    cutoff = built.samples["cutoff"]  # inputs are keyed by sample id
    start = built.samples["start"]
    sid = inputs["subject_id"]
    assert (inputs["time"].to_numpy() < cutoff.loc[sid].to_numpy()).all()
    assert (inputs["time"].to_numpy() >= start.loc[sid].to_numpy()).all()
    assert not inputs["code"].isin(["MEDS_DEATH", "MEDS_BIRTH"]).any()
    per_subject = inputs.groupby("subject_id")["code"]
    assert per_subject.apply(lambda c: c.str.startswith("AGE_YEARS/").sum()).eq(1).all()
