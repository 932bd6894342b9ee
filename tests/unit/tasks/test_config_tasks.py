"""Tasks written in the config, on real Synthea FHIR R4 patients: parsing, cohort, labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medseq.tasks.cohort import build_task, prediction_times
from medseq.tasks.spec import TaskSpec, match_codes

ACUTE = {
    "prediction_time": {"date": "2016-01-01T00:00:00Z"},
    "cohort": {"min_age_years": 18},
    "label": {"codes": ["ENCOUNTER/EMER", "ENCOUNTER/IMP"], "within_hours": 26298},
    "observation": {"window_hours": 26298},
}
DEATH = {
    "prediction_time": {"anchor": ["ENCOUNTER/EMER"], "offset_hours": 1},
    "label": {"death": True, "within_hours": 87660},
}


def test_spec_round_trips_and_keeps_its_values():
    spec = TaskSpec.from_dict(ACUTE)
    assert TaskSpec.from_dict(spec.to_dict()) == spec
    assert spec.label.codes == ("ENCOUNTER/EMER", "ENCOUNTER/IMP")
    assert spec.cohort.min_age_years == 18.0
    assert spec.observation.visit_hours == 24.0
    assert spec.prediction_time.instant() == pd.Timestamp("2016-01-01", tz="UTC")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({**ACUTE, "labels": {}}, r"\[task\]: unknown keys \['labels'\]"),
        ({"label": DEATH["label"]}, r"needs a \[task.prediction_time\] table"),
        (
            {**ACUTE, "prediction_time": {"date": "2016-01-01", "anchor": ["X"]}},
            "exactly one of date or anchor",
        ),
        ({**ACUTE, "prediction_time": {"date": "yesterday"}}, "ISO 8601"),
        ({**DEATH, "prediction_time": {"anchor": "ENCOUNTER/IMP"}}, "must be a list"),
        ({**DEATH, "prediction_time": {"anchor": ["X"], "occurrence": "middle"}}, "occurrence"),
        ({**DEATH, "label": {"death": True, "codes": ["X"]}}, "exactly one of codes, death"),
        ({**DEATH, "label": {"value_codes": ["X"]}}, "needs a threshold"),
        ({**DEATH, "label": {"codes": ["X"], "above": 3}}, "thresholds of value_codes"),
        ({**DEATH, "label": {"value_codes": ["X"], "above": "high"}}, "above must be a finite"),
        ({**DEATH, "meds_labels": {"path": "x.parquet"}}, r"remove \[task.prediction_time\]"),
        ({"meds_labels": {"path": "x", "value": "float_value"}}, "above = X is needed"),
        ({"meds_labels": {"path": "x", "value": "categorical_value"}}, "positive = "),
        ({"meds_labels": {"path": "x", "value": "text_value"}}, "value must be one of"),
        (
            {**DEATH, "prediction_time": {"anchor": ["X"], "occurrence": "each"}},
            "first', 'last', 'every'",
        ),
        ({**DEATH, "label": {"death": True, "within_hours": 0}}, "within_hours must be > 0"),
        ({**DEATH, "label": {"death": True, "censored": "drop"}}, "censored must be one of"),
        ({**DEATH, "cohort": {"min_age_years": 60, "max_age_years": 40}}, "below min_age_years"),
        ({**DEATH, "cohort": {"sexx": ["F"]}}, r"\[task.cohort\]: unknown keys \['sexx'\]"),
    ],
)
def test_bad_task_tables_name_the_problem(raw, message):
    with pytest.raises(ValueError, match=message):
        TaskSpec.from_dict(raw)


def test_code_patterns_match_exact_codes_and_starred_prefixes():
    codes = pd.Series(["ENCOUNTER/IMP", "ENCOUNTER/EMER", "http://loinc.org|8867-4", "ENC"])
    assert match_codes(codes, ("ENCOUNTER/IMP",)).tolist() == [True, False, False, False]
    assert match_codes(codes, ("ENCOUNTER/*",)).tolist() == [True, True, False, False]
    assert match_codes(codes, ("http://loinc.org|*", "ENC")).tolist() == [False, False, True, True]


def test_cohort_table_accounts_for_every_subject(synthea):
    built = build_task(synthea.events, synthea.origin, TaskSpec.from_dict(ACUTE))
    table = built.cohort
    n_all = int(table["n_remaining"].iloc[0])
    assert n_all == synthea.events["subject_id"].nunique()
    assert n_all - int(table["n_excluded"].sum()) == len(built.labels)
    assert int(table["n_remaining"].iloc[-1]) == len(built.labels)
    assert (table["n_excluded"] > 0).sum() >= 2  # a real cohort leaves people out
    assert 0 < built.labels.sum() < len(built.labels)
    assert (built.samples["age_years"] >= 18).all()
    assert (built.samples.index == built.samples["subject_id"]).all()


def _brute_force_labels(events, cutoff, within, patterns):
    """The label rule written as a plain loop, to check the vectorised one."""
    out = {}
    for sid, t in cutoff.items():
        ev = events[events["subject_id"] == sid]
        hit = ev[match_codes(ev["code"], patterns)]
        out[sid] = int(((hit["time"] > t) & (hit["time"] <= t + within)).any())
    return pd.Series(out)


def test_labels_and_prediction_times_follow_the_definition(synthea):
    spec = TaskSpec.from_dict(ACUTE)
    built = build_task(synthea.events, synthea.origin, spec)
    cutoff = built.samples["cutoff"]
    origin = pd.to_datetime(synthea.origin.loc[cutoff.index], utc=True)  # hour 0, in UTC
    expected_t = (pd.Timestamp("2016-01-01", tz="UTC") - origin) / pd.Timedelta(hours=1)
    np.testing.assert_allclose(cutoff.to_numpy(), expected_t.to_numpy(dtype=np.float64))
    brute = _brute_force_labels(synthea.events, cutoff, 26298.0, spec.label.codes)
    assert (brute.loc[built.labels.index].to_numpy() == built.labels.to_numpy()).all()


def test_anchor_tasks_predict_after_the_first_anchor_and_only_the_living(synthea):
    spec = TaskSpec.from_dict(DEATH)
    built = build_task(synthea.events, synthea.origin, spec)
    ev = synthea.events
    first_emer = ev[ev["code"] == "ENCOUNTER/EMER"].groupby("subject_id")["time"].min()
    np.testing.assert_allclose(
        built.samples["cutoff"].to_numpy(), first_emer.loc[built.samples.index].to_numpy() + 1
    )
    deaths = ev[ev["code"] == "MEDS_DEATH"].set_index("subject_id")["time"]
    dead = built.samples.index.intersection(deaths.index)
    assert (deaths.loc[dead] > built.samples.loc[dead, "cutoff"]).all()
    within = deaths.loc[dead] <= built.samples.loc[dead, "cutoff"] + 87660
    assert set(built.labels[built.labels == 1].index) == set(dead[within.to_numpy()])
    assert built.labels.sum() > 0


def test_censored_subjects_are_excluded_or_negative_as_asked(synthea):
    excluded = build_task(synthea.events, synthea.origin, TaskSpec.from_dict(ACUTE))
    n_censored = int(excluded.cohort.set_index("step").loc["censored", "n_excluded"])
    assert n_censored > 0
    raw = {**ACUTE, "label": {**ACUTE["label"], "censored": "negative"}}
    kept = build_task(synthea.events, synthea.origin, TaskSpec.from_dict(raw))
    assert len(kept.labels) == len(excluded.labels) + n_censored
    assert kept.labels.sum() == excluded.labels.sum()
    assert "censored" not in set(kept.cohort["step"])


def test_code_filters_before_the_prediction_time(synthea):
    ev = synthea.events
    plain = build_task(ev, synthea.origin, TaskSpec.from_dict(ACUTE))
    code = "ENCOUNTER/EMER"
    required = build_task(
        ev, synthea.origin, TaskSpec.from_dict({**ACUTE, "cohort": {"require_codes": [code]}})
    )
    excluded = build_task(
        ev, synthea.origin, TaskSpec.from_dict({**ACUTE, "cohort": {"exclude_codes": [code]}})
    )
    for built, should_have in ((required, True), (excluded, False)):
        for sid, row in built.samples.iterrows():
            mine = ev[(ev["subject_id"] == sid) & (ev["code"] == code)]
            had = bool((mine["time"] < row.cutoff).any())
            assert had == should_have
    assert 0 < len(required.labels) < len(excluded.labels) + len(required.labels)
    assert set(required.labels.index).isdisjoint(excluded.labels.index)
    assert len(plain.cohort) < len(required.cohort)


def test_an_empty_cohort_says_so_with_the_table(synthea):
    raw = {**ACUTE, "cohort": {"min_age_years": 150}}
    with pytest.raises(ValueError, match=r"(?s)cohort is empty.*age_outside_range"):
        build_task(synthea.events, synthea.origin, TaskSpec.from_dict(raw))


def test_a_date_before_a_subjects_hour_zero_gives_a_negative_time(synthea):
    spec = TaskSpec.from_dict({**DEATH, "prediction_time": {"date": "1900-01-01"}})
    times = prediction_times(synthea.events, synthea.origin, spec.prediction_time)
    assert (times < 0).all() and len(times) == synthea.events["subject_id"].nunique()


def test_stages_a_config_task_lacks_are_refused_with_the_reason():
    from medseq.datasets.registry import StageUnsupported, get_dataset

    spec = get_dataset("fhir_r4")
    with pytest.raises(StageUnsupported, match="POST it as a FHIR R4 Bundle"):
        spec.require("request", "POST /v1/predict")
    with pytest.raises(StageUnsupported, match="predicts once per sample"):
        spec.require("streaming", "medseq serve --stream")
    assert spec.require("fhir", "POST /v1/predict with a FHIR Bundle") is spec.fhir
    with pytest.raises(StageUnsupported, match="codes of a MEDS dataset are its own"):
        get_dataset("meds_events").require("fhir", "POST /v1/predict with a FHIR Bundle")
    with pytest.raises(KeyError, match="write its \\[task\\] table"):
        spec.tasks["never_defined"]


def test_an_event_dataset_without_a_task_table_says_where_tasks_come_from():
    from medseq.experiment.config import parse_config

    raw = {"model": {}, "data": {"dataset": "meds_events", "task": "not_written", "test": ""}}
    with pytest.raises(ValueError, match=r"takes its tasks from a \[task\] table"):
        parse_config(raw)


def test_age_and_sex_come_from_the_patient_at_each_prediction_time(synthea):
    """Age is taken at the prediction time (not at hour 0) from Patient.birthDate, and the
    sex filter keeps only Patient.gender's subjects, the others counted."""
    from medseq.sources.fhir_r4 import age_years_at

    every = {
        "prediction_time": {"anchor": ["ENCOUNTER/AMB"], "occurrence": "every"},
        "label": {"codes": ["ENCOUNTER/EMER"], "within_hours": 4383, "censored": "negative"},
    }
    samples = build_task(synthea.events, synthea.origin, TaskSpec.from_dict(every)).samples
    sid, cutoff = samples["subject_id"].to_numpy(), samples["cutoff"].to_numpy()
    np.testing.assert_allclose(
        samples["age_years"].to_numpy(), age_years_at(synthea, sid, cutoff), atol=1e-6
    )
    grows = samples.groupby("subject_id")["age_years"].agg(["min", "max"])
    assert (grows["max"] - grows["min"] > 1).sum() > 10  # one patient, many ages
    at_hour0 = synthea.static["age_years"]  # indexed by subject_id
    assert not np.allclose(samples["age_years"], at_hour0.reindex(sid).to_numpy())

    women = build_task(
        synthea.events,
        synthea.origin,
        TaskSpec.from_dict({**ACUTE, "cohort": {"min_age_years": 18, "sex": ["F"]}}),
    )
    everyone = build_task(synthea.events, synthea.origin, TaskSpec.from_dict(ACUTE))
    gender = synthea.static["sex"].reindex(women.samples["subject_id"].to_numpy())
    assert (gender == "female").all() and (women.samples["sex"] == "F").all()
    steps = women.cohort.set_index("step")["n_excluded"]
    n_men = int((everyone.samples["sex"] != "F").sum())
    assert n_men > 0 and len(women.labels) == len(everyone.labels) - n_men
    assert int(steps["sex_not_in_cohort"]) >= n_men
