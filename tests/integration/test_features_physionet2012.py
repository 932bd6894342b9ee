"""medseq.features on the real PhysioNet 2012 sets A and B (shared/data/physionet2012)."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

from medseq.features import ICUFeaturizer, summary_features
from medseq.sources import physionet2012

# Reasons under which an event is left out of the grid (static and aggregation keys aside).
LEFT_OUT = (
    "not_requested_subject",
    "unknown_code:",
    "missing_code",
    "nan_value",
    "before_window",
    "after_window",
)


@pytest.fixture(scope="module")
def fitted(set_a):
    train = np.sort(set_a.static.index.to_numpy())[::2]  # every other subject of set A
    featurizer = ICUFeaturizer(variables=physionet2012.VARIABLES)
    return featurizer.fit(set_a.events, set_a.static, train), train


def test_tensors_have_the_contract_shapes(fitted, set_a):
    featurizer, _ = fitted
    ids = set_a.static.index.to_numpy()
    out = featurizer.transform(set_a.events, set_a.static, ids)
    n = len(ids)
    assert featurizer.feature_names_ == list(physionet2012.VARIABLES)
    assert out["values"].shape == out["mask"].shape == out["delta"].shape == (n, 48, 37)
    assert out["static"].shape == (n, featurizer.n_static) == (n, 13)
    assert ((out["lengths"] >= 1) & (out["lengths"] <= 48)).all()
    assert np.isfinite(out["values"]).all() and (out["delta"] >= 0).all()
    assert out["delta"].max() <= 47.0


def test_every_event_is_on_the_grid_or_counted(fitted, set_a):
    featurizer, _ = fitted
    out = featurizer.transform(set_a.events, set_a.static, set_a.static.index.to_numpy())
    counts = featurizer.last_transform_report_.counts
    left_out = sum(n for key, n in counts.items() if key.startswith(LEFT_OUT))
    on_grid = int(out["mask"].sum()) + counts.get("aggregated_in_bin", 0)
    assert on_grid + left_out == len(set_a.events)
    assert left_out == 0  # the reader keeps only the 37 variables, 00:00 to 48:00


def test_training_values_are_standardised(fitted, set_a):
    featurizer, train = fitted
    out = featurizer.transform(set_a.events, set_a.static, train)
    observed = out["mask"] == 1
    per_variable = np.array(
        [out["values"][..., f][observed[..., f]].mean() for f in range(featurizer.n_features)]
    )
    # binned "last" values are a subsample of the observations the mean was fitted on
    assert np.abs(per_variable).max() < 0.1
    assert abs(out["values"][observed].mean()) < 0.02
    assert abs(out["static"][:, 0].mean()) < 0.05  # Age


def test_state_round_trip_and_speed_on_both_sets(fitted, set_a, set_b):
    featurizer, _ = fitted
    events = pd.concat([set_a.events, set_b.events], ignore_index=True)
    static = pd.concat([set_a.static, set_b.static])
    ids = static.index.to_numpy()
    start = time.perf_counter()
    out = featurizer.transform(events, static, ids)
    seconds = time.perf_counter() - start
    assert seconds < 30, f"transforming 8000 stays took {seconds:.1f} s"
    back = ICUFeaturizer.from_state_dict(json.loads(json.dumps(featurizer.state_dict())))
    again = back.transform(events, static, ids)
    for key in out:
        np.testing.assert_array_equal(out[key], again[key])


def test_summary_counts_match_the_events(set_b):
    ids = set_b.static.index.to_numpy()
    matrix, names = summary_features(set_b.events, set_b.static, ids)
    assert matrix.shape == (len(ids), len(names)) == (4000, 37 * 6 + 8)
    counts = [names.index(f"{v}_count") for v in physionet2012.VARIABLES]
    assert matrix[:, counts].sum() == len(set_b.events)
    hr = matrix[:, names.index("HR_mean")]
    assert 60 < np.nanmedian(hr) < 110
