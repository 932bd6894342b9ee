"""Threshold labels and the MEDS label schema, on real Synthea FHIR R4 patients.

A value crossing a threshold within the window is checked against a plain loop; a label
file written here with pyarrow alone, the way another MEDS tool writes one, is used as it
is; our own label files read back to the same samples.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medseq.schema import DataError
from medseq.tasks.cohort import build_task
from medseq.tasks.meds_labels import write_meds_labels
from medseq.tasks.spec import TaskSpec, match_codes

HBA1C = "http://loinc.org|4548-4"
SYSTOLIC = "http://loinc.org|8480-6"


def _brute_force(events, samples, within, code, above=None, below=None):
    out = []
    for row in samples.itertuples():
        ev = events[(events["subject_id"] == row.subject_id) & (events["code"] == code)]
        ev = ev[(ev["time"] > row.cutoff) & (ev["time"] <= row.cutoff + within)]
        hit = np.zeros(len(ev), dtype=bool)
        if above is not None:
            hit |= ev["value"].to_numpy() > above
        if below is not None:
            hit |= ev["value"].to_numpy() < below
        out.append(int(hit.any()))
    return np.array(out)


@pytest.mark.parametrize(
    ("code", "bounds"), [(HBA1C, {"above": 6.3}), (SYSTOLIC, {"above": 139.0, "below": 105.0})]
)
def test_a_value_crossing_a_threshold_in_the_window_labels_positive(synthea, code, bounds):
    raw = {
        "prediction_time": {"date": "2014-01-01T00:00:00Z"},
        "label": {"value_codes": [code], **bounds, "within_hours": 43830},
    }
    built = build_task(synthea.events, synthea.origin, TaskSpec.from_dict(raw))
    expected = _brute_force(
        synthea.events, built.samples, 43830.0, code, bounds.get("above"), bounds.get("below")
    )
    np.testing.assert_array_equal(built.labels.to_numpy(), expected)
    assert 0 < built.labels.sum() < len(built.labels)
    # a value in the window that does not cross is not enough: some subjects had the code
    # measured in the window and are still negative
    ev = synthea.events
    measured = ev[match_codes(ev["code"], (code,))]
    cut = built.samples.set_index("subject_id")["cutoff"]
    measured = measured[measured["subject_id"].isin(cut.index)]
    t0 = cut.reindex(measured["subject_id"]).to_numpy()
    in_window = measured[(measured["time"] > t0) & (measured["time"] <= t0 + 43830)]
    negatives = set(built.labels[built.labels == 0].index)
    assert negatives & set(in_window["subject_id"])


def _other_tool_labels(samples: pd.DataFrame, origin: pd.Series, path, column: str, values):
    """A label file written with pyarrow only, as another MEDS tool would (schema columns,
    naive UTC microsecond times), shuffled."""
    hour0 = pd.to_datetime(origin.reindex(samples["subject_id"]), utc=True).dt.tz_localize(None)
    hour0 = hour0.fillna(pd.Timestamp("2000-01-01"))  # subjects the events lack
    when = hour0.to_numpy() + pd.to_timedelta(samples["cutoff"].to_numpy(), unit="h").to_numpy()
    types = {
        "boolean_value": pa.bool_(),
        "integer_value": pa.int64(),
        "float_value": pa.float64(),
        "categorical_value": pa.string(),
    }
    cols = {
        "subject_id": pa.array(samples["subject_id"].to_numpy(dtype=np.int64)),
        "prediction_time": pa.array(when.astype("datetime64[us]"), pa.timestamp("us")),
    }
    for name, kind in types.items():
        cols[name] = pa.array(values, kind) if name == column else pa.nulls(len(samples), kind)
    table = pa.table(cols)
    order = np.random.default_rng(0).permutation(len(samples))
    pq.write_table(table.take(order), path)
    return path


def test_a_meds_label_file_of_another_tool_is_used_as_is(synthea, tmp_path):
    raw = {
        "prediction_time": {"anchor": ["http://snomed.info/sct|185349003"], "occurrence": "every"},
        "label": {"codes": ["ENCOUNTER/EMER", "ENCOUNTER/IMP"], "within_hours": 4383},
    }
    ours = build_task(synthea.events, synthea.origin, TaskSpec.from_dict(raw))
    assert ours.samples["subject_id"].duplicated().any()  # several times per subject
    # the other tool's labels: a numeric risk score thresholded here, one row per sample
    score = np.where(ours.labels.to_numpy() == 1, 0.9, 0.1)
    path = _other_tool_labels(
        ours.samples, synthea.origin, tmp_path / "risk.parquet", "float_value", score
    )
    spec = TaskSpec.from_dict({"meds_labels": {"path": str(path), "value": "float_value",
                                               "above": 0.5}})  # fmt: skip
    theirs = build_task(synthea.events, synthea.origin, spec)
    cols = ["subject_id", "cutoff", "start", "age_years", "sex"]
    mine = ours.samples[cols].reset_index(drop=True)
    got = theirs.samples[cols].reset_index(drop=True)
    np.testing.assert_array_equal(got["subject_id"], mine["subject_id"])
    np.testing.assert_allclose(got["cutoff"], mine["cutoff"], atol=1e-6)
    np.testing.assert_array_equal(theirs.labels.to_numpy(), ours.labels.to_numpy())
    assert "censored" not in set(theirs.cohort["step"])  # the file's labels are taken as given

    # a boolean column, with rows of an unknown subject: counted, the rest kept
    extra = ours.samples.head(3).assign(subject_id=[1, 2, 3])
    both = pd.concat([ours.samples, extra])
    flags = np.r_[ours.labels.to_numpy(), [1, 0, 1]].astype(bool)
    path = _other_tool_labels(both, synthea.origin, tmp_path / "b.parquet", "boolean_value", flags)
    with_unknown = build_task(
        synthea.events, synthea.origin, TaskSpec.from_dict({"meds_labels": {"path": str(path)}})
    )
    step = with_unknown.cohort.set_index("step").loc["label_subject_not_in_data"]
    assert step["n_excluded"] == 3
    np.testing.assert_array_equal(with_unknown.labels.to_numpy(), ours.labels.to_numpy())


def test_our_meds_labels_read_back_to_the_same_samples(synthea, tmp_path):
    raw = {
        "prediction_time": {"date": "2016-01-01T00:00:00Z"},
        "cohort": {"min_age_years": 18},
        "label": {"codes": ["ENCOUNTER/EMER", "ENCOUNTER/IMP"], "within_hours": 26298},
    }
    built = build_task(synthea.events, synthea.origin, TaskSpec.from_dict(raw))
    path = write_meds_labels(built.samples, built.labels, synthea.origin, tmp_path / "l.parquet")
    schema = pq.read_schema(path)
    assert schema.field("prediction_time").type == pa.timestamp("us")
    assert schema.field("float_value").type == pa.float64()
    again = build_task(
        synthea.events, synthea.origin, TaskSpec.from_dict({"meds_labels": {"path": str(path)}})
    )
    assert again.samples.index.equals(built.samples.index)
    np.testing.assert_allclose(again.samples["cutoff"], built.samples["cutoff"], atol=1e-6)
    assert again.labels.equals(built.labels)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("drop_value", r"lacks column\(s\) \['boolean_value'\]"),
        ("null_label", "rows have no boolean_value"),
        ("duplicate", "repeat a \\(subject_id, prediction_time\\)"),
        ("not_parquet", "not a parquet file"),
        ("missing", "no such MEDS label file"),
    ],
)
def test_a_bad_label_file_is_refused_by_name(synthea, tmp_path, change, message):
    sid = int(synthea.events["subject_id"].iloc[0])
    frame = pd.DataFrame(
        {
            "subject_id": [sid, sid],
            "prediction_time": pd.to_datetime(["2015-01-01", "2016-01-01"]).astype(
                "datetime64[us]"
            ),
            "boolean_value": [True, False],
        }
    )
    path = tmp_path / "labels.parquet"
    if change == "drop_value":
        frame = frame.drop(columns="boolean_value")
    elif change == "null_label":
        frame["boolean_value"] = pd.array([True, None], dtype="boolean")
    elif change == "duplicate":
        frame["prediction_time"] = frame["prediction_time"].iloc[0]
    if change == "not_parquet":
        path.write_text("subject_id,prediction_time\n1,2015-01-01\n")
    elif change != "missing":
        frame.to_parquet(path)
    spec = TaskSpec.from_dict({"meds_labels": {"path": str(path)}})
    with pytest.raises(DataError, match=message):
        build_task(synthea.events, synthea.origin, spec)
