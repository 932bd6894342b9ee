"""ICUFeaturizer: exact tensors for a 2-subject example, train-only fitting, state, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from features_toys import toy_events, toy_static

from medseq.features import ICUFeaturizer, NotFittedError
from medseq.schema import DataError

COLUMNS = ["Age", "Gender", "ICUType"]
TRAIN = [10, 20]
IDS = [20, 10]
S5 = math.sqrt(5.0)


def fitted(**kwargs) -> ICUFeaturizer:
    params = {"n_steps": 4, "variables": ["A", "B"], "static_columns": COLUMNS}
    params["clip_quantiles"] = None
    params.update(kwargs)
    return ICUFeaturizer(**params).fit(toy_events(), toy_static(), TRAIN)


def test_forward_fill_tensors_by_hand():
    # Training observations in the window: A = 1, 3, 5, 7 (mean 4, std sqrt 5),
    # B = 10, 20 (mean 15, std 5); subject 30's A = 100 is not a training subject.
    f = fitted()
    out = f.transform(toy_events(), toy_static(), IDS)
    a = [-1 / S5, -1 / S5, 1 / S5, 3 / S5]  # 3 (last of bin 0), carried, 5, 7
    np.testing.assert_allclose(out["values"][1, :, 0], a, rtol=1e-6)
    np.testing.assert_allclose(out["values"][1, :, 1], [0, -1, -1, -1])  # mean before first
    np.testing.assert_allclose(out["values"][0], [[0, 0], [0, 1], [0, 0], [0, 0]])  # padded
    np.testing.assert_array_equal(out["mask"][1].T, [[1, 0, 1, 1], [0, 1, 0, 0]])
    np.testing.assert_array_equal(out["delta"][1].T, [[0, 1, 2, 1], [0, 1, 1, 2]])
    np.testing.assert_array_equal(out["lengths"], [2, 4])
    assert out["static"].shape == (2, 9)
    assert {k: v.dtype for k, v in out.items()} == {
        "values": np.float32, "mask": np.float32, "delta": np.float32,
        "lengths": np.int64, "static": np.float32,
    }  # fmt: skip
    assert (f.n_features, f.n_static, f.feature_names_) == (2, 9, ["A", "B"])


def test_mean_and_zero_imputation():
    for impute in ("mean", "zero"):
        out = fitted(impute=impute).transform(toy_events(), toy_static(), [10])
        np.testing.assert_allclose(out["values"][0, :, 0], [-1 / S5, 0, 1 / S5, 3 / S5], rtol=1e-6)
        np.testing.assert_allclose(out["values"][0, :, 1], [0, -1, 0, 0])


@pytest.mark.parametrize(("scale", "factor"), [("hours", 1.0), ("horizon", 1 / 8)])
def test_delta_scale(scale, factor):
    # 2-hour bins, window [0, 8]: B at 1.2 h in bin 0 and 4.5 h in bin 2; A last in bin 2
    out = fitted(step_hours=2.0, delta_scale=scale).transform(toy_events(), toy_static(), [10])
    np.testing.assert_allclose(out["delta"][0, :, 1], np.array([0, 2, 4, 0]) * factor)
    assert out["lengths"].tolist() == [3]


def test_learned_variables_and_reports():
    f = ICUFeaturizer(n_steps=4, static_columns=COLUMNS).fit(toy_events(), toy_static(), TRAIN)
    assert f.feature_names_ == ["A", "B", "C"]
    assert f.fit_report_.counts["not_requested_subject"] == 1
    f.transform(toy_events().replace({"code": {"C": "D"}}), toy_static(), IDS)
    report = f.last_transform_report_
    assert report.counts["unknown_code:D"] == 1
    assert report.counts["nan_value"] == 1
    assert report.counts["static_unexpected:ICUType"] == 1


def test_normalisation_is_fitted_on_training_subjects_only():
    rng = np.random.default_rng(0)
    n, per = 40, 30
    subject = np.repeat(np.arange(n), per)
    time = np.tile(np.arange(per) + 0.5, n)  # one observation per bin
    shift = np.where(subject < 20, 0.0, 500.0)  # the held-out half is far off
    events = pd.DataFrame(
        {
            "subject_id": subject,
            "time": time,
            "code": "X",
            "value": rng.normal(size=n * per) + shift,
        }
    )
    static = pd.DataFrame({"Age": rng.normal(60, 10, n)}, index=pd.Index(np.arange(n)))
    f = ICUFeaturizer(n_steps=per, static_columns=["Age"], clip_quantiles=None)
    train = np.arange(20)
    out = f.fit(events, static, train).transform(events, static, np.arange(n))
    observed = out["values"][:20][out["mask"][:20] == 1]
    assert observed.mean() == pytest.approx(0.0, abs=1e-5)
    assert observed.std() == pytest.approx(1.0, abs=1e-4)
    assert out["values"][20:].mean() > 100  # not re-centred on the held-out subjects
    assert out["static"][:20, 0].mean() == pytest.approx(0.0, abs=1e-5)


def test_json_round_trip_gives_identical_output():
    f = fitted(log_variables=["A"], aggregate="mean", clip_quantiles=[0.1, 0.9], clip_sigma=3.0)
    text = json.dumps(f.state_dict(), allow_nan=False)
    back = ICUFeaturizer.from_state_dict(json.loads(text))
    a = f.transform(toy_events(), toy_static(), IDS)
    b = back.transform(toy_events(), toy_static(), IDS)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert json.dumps(back.state_dict(), allow_nan=False) == text


def test_state_is_validated():
    state = fitted().state_dict()
    with pytest.raises(ValueError, match="unknown keys"):
        ICUFeaturizer.from_state_dict({**state, "extra": 1})
    with pytest.raises(ValueError, match="missing keys"):
        ICUFeaturizer.from_state_dict({k: v for k, v in state.items() if k != "static"})
    with pytest.raises(ValueError, match="version"):
        ICUFeaturizer.from_state_dict({**state, "version": 2})
    with pytest.raises(ValueError, match="params"):
        ICUFeaturizer.from_state_dict({**state, "params": {**state["params"], "typo": 1}})


def test_errors_name_what_to_do():
    with pytest.raises(NotFittedError, match=r"call fit\("):
        ICUFeaturizer().transform(toy_events(), toy_static(), IDS)
    with pytest.raises(DataError, match=r"subject_id \[404\]"):
        fitted().transform(toy_events(), toy_static(), [10, 404])
    with pytest.raises(ValueError, match="repeats"):
        fitted().transform(toy_events(), toy_static(), [10, 10])
    with pytest.raises(ValueError, match="impute"):
        ICUFeaturizer(impute="median").fit(toy_events(), toy_static(), TRAIN)
