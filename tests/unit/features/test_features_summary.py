"""summary_features: per-variable statistics checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
from features_toys import NAN, toy_events, toy_static

from medseq.features import summary_features
from medseq.schema import DataError, ReadReport


def test_statistics_by_hand():
    report = ReadReport(source="test")
    matrix, names = summary_features(
        toy_events(),
        toy_static(),
        [20, 10],
        variables=["A", "B"],
        window_hours=4.0,
        static_columns=["Age", "Gender", "ICUType"],
        report=report,
    )
    assert names == [
        "A_last", "A_min", "A_max", "A_mean", "A_count", "A_first",
        "B_last", "B_min", "B_max", "B_mean", "B_count", "B_first",
        "Age", "Gender", "ICUType=1", "ICUType=2", "ICUType=3", "ICUType=4",
    ]  # fmt: skip
    np.testing.assert_array_equal(
        matrix,
        [
            # subject 20: no A; B once; Gender missing; ICUType 7 is not a category
            [NAN, NAN, NAN, NAN, 0, NAN, 20, 20, 20, 20, 1, 20, 80, NAN, NAN, NAN, NAN, NAN],
            # subject 10: A = 1, 3, 5, 7 in [0, 4] h; B = 10 (NaN and 4.5 h left out)
            [7, 1, 7, 4, 4, 1, 10, 10, 10, 10, 1, 10, 60, 1, 0, 1, 0, 0],
        ],
    )
    assert report.counts == {
        "not_requested_subject": 1,
        "unknown_code:C": 1,
        "nan_value": 1,
        "before_window": 1,
        "after_window": 1,
    }


def test_default_columns_are_physionet_2012():
    matrix, names = summary_features(
        toy_events(), toy_static().assign(Height=1.0, Weight=2.0), [10]
    )
    assert matrix.shape == (1, 37 * 6 + 8) == (1, len(names))
    icu_types = [f"ICUType={k}" for k in (1, 2, 3, 4)]
    assert names[-8:] == ["Age", "Gender", "Height", *icu_types, "Weight"]
    assert np.isnan(matrix[0, :-8]).sum() == 37 * 5  # no PhysioNet variable in the toy table


def test_missing_static_row_is_an_error():
    with pytest.raises(DataError, match="404"):
        summary_features(toy_events(), toy_static(), [404], static_columns=["Age"])
