"""Discretizer: a 2-subject grid checked value by value, and the window/aggregation policies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from features_toys import NAN, toy_events

from medseq.features.icu.discretizer import (
    Discretizer,
    forward_fill,
    last_observed,
    sequence_lengths,
    time_since_observed,
)
from medseq.schema import DataError

IDS = np.array([20, 10])  # deliberately not sorted: rows follow this order


@pytest.fixture
def grid():
    return Discretizer(step_hours=1.0, n_steps=4).transform(toy_events(), IDS, ["A", "B"])


def test_values_mask_delta_lengths_by_hand(grid):
    # row 0 = subject 20, row 1 = subject 10; last axis = (A, B)
    np.testing.assert_array_equal(grid.values[1, :, 0], [3.0, NAN, 5.0, 7.0])
    np.testing.assert_array_equal(grid.values[1, :, 1], [NAN, 10.0, NAN, NAN])
    np.testing.assert_array_equal(grid.values[0, :, 0], [NAN] * 4)
    np.testing.assert_array_equal(grid.values[0, :, 1], [NAN, 20.0, NAN, NAN])
    np.testing.assert_array_equal(grid.mask[1].T, [[1, 0, 1, 1], [0, 1, 0, 0]])
    np.testing.assert_array_equal(grid.mask[0].T, [[0, 0, 0, 0], [0, 1, 0, 0]])
    # GRU-D: delta_t = 1 + delta_{t-1} if unobserved at t-1 else 1; delta_0 = 0
    np.testing.assert_array_equal(grid.delta[1].T, [[0, 1, 2, 1], [0, 1, 1, 2]])
    # subject 20 ends at bin 1: bins 2, 3 are padding, delta 0 there
    np.testing.assert_array_equal(grid.delta[0].T, [[0, 1, 0, 0], [0, 1, 0, 0]])
    np.testing.assert_array_equal(grid.lengths, [2, 4])
    assert grid.lengths.dtype == np.int64


def test_every_left_out_event_is_counted(grid):
    assert grid.report.counts == {
        "not_requested_subject": 1,
        "unknown_code:C": 1,
        "nan_value": 1,
        "before_window": 1,
        "after_window": 1,
        "aggregated_in_bin": 1,
    }
    assert grid.report.n_events == len(toy_events())


def test_mean_aggregation():
    grid = Discretizer(n_steps=4, aggregate="mean").transform(toy_events(), IDS, ["A", "B"])
    np.testing.assert_array_equal(grid.values[1, :, 0], [2.0, NAN, 5.0, 7.0])


def test_right_edge_and_step_hours():
    events = pd.DataFrame(
        {"subject_id": [1, 1, 1], "time": [0.0, 47.99, 48.0], "code": "X", "value": [1.0, 2, 3]}
    )
    grid = Discretizer(step_hours=2.0, n_steps=24).transform(events, np.array([1]), ["X"])
    assert grid.values[0, 23, 0] == 3.0  # 48:00 in the last bin, after 47:59
    assert grid.report.counts == {"aggregated_in_bin": 1}
    assert grid.delta[0, 23, 0] == 46.0  # hours: 23 bins of 2 h since bin 0


def test_same_time_ties_do_not_depend_on_row_order():
    events = pd.DataFrame(
        {"subject_id": [1, 1], "time": [0.5, 0.5], "code": "X", "value": [2.0, 1.0]}
    )
    d = Discretizer(n_steps=2)
    a = d.transform(events, np.array([1]), ["X"]).values
    b = d.transform(events.iloc[::-1], np.array([1]), ["X"]).values
    assert a[0, 0, 0] == b[0, 0, 0] == 2.0  # larger value of a tie is "last"


def test_subject_without_events_has_length_one():
    grid = Discretizer(n_steps=3).transform(toy_events(), np.array([99]), ["A"])
    assert grid.lengths.tolist() == [1]
    assert not grid.mask.any()
    assert grid.report.counts["subjects_without_events"] == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"step_hours": 0}, "step_hours"), ({"n_steps": 0}, "n_steps"), ({"aggregate": "max"}, "agg")],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Discretizer(**kwargs)


def test_bad_tables():
    with pytest.raises(DataError, match="missing columns"):
        Discretizer().transform(toy_events().drop(columns="time"), IDS, ["A"])
    bad = toy_events().assign(time=np.inf)
    with pytest.raises(DataError, match="time must be finite"):
        Discretizer().transform(bad, IDS, ["A"])


def test_grid_helpers_match_reference_loops():
    rng = np.random.default_rng(0)
    mask = rng.random((3, 9, 4)) < 0.3
    values = np.where(mask, rng.normal(size=mask.shape), np.nan)
    last = last_observed(mask)
    filled = forward_fill(values, last, np.full(4, -7.0))
    delta = time_since_observed(last, 0.5)
    for n, f in np.ndindex(3, 4):
        carry, d = -7.0, 0.0
        for t in range(9):
            if t > 0:
                d = 0.5 if mask[n, t - 1, f] else 0.5 + d
            carry = values[n, t, f] if mask[n, t, f] else carry
            assert filled[n, t, f] == carry
            assert delta[n, t, f] == d
    expected = [max([t + 1 for t in range(9) if mask[n, t].any()], default=1) for n in range(3)]
    assert sequence_lengths(mask).tolist() == expected
