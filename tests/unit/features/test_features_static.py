"""StaticEncoder: continuous, binary and one-hot columns with missing indicators."""

from __future__ import annotations

import json

import numpy as np
import pytest
from features_toys import toy_static

from medseq.features.icu.static import StaticEncoder
from medseq.schema import DataError, ReadReport

COLUMNS = ["Age", "Gender", "ICUType"]
NAMES = [
    "Age", "Age_missing", "Gender", "Gender_missing",
    "ICUType=1", "ICUType=2", "ICUType=3", "ICUType=4", "ICUType=unknown",
]  # fmt: skip


def test_encoding_by_hand():
    enc = StaticEncoder(COLUMNS, clip_quantiles=None).fit(toy_static(), np.array([10, 20]))
    assert enc.names_ == NAMES
    report = ReadReport(source="test")
    out = enc.transform(toy_static(), np.array([20, 10, 30]), report)
    assert out.dtype == np.float32
    # Age: mean 70, std 10 on subjects 10 and 20 only
    np.testing.assert_array_equal(
        out,
        [
            [1, 0, 0, 1, 0, 0, 0, 0, 1],  # 20: Gender missing, ICUType 7 unexpected
            [-1, 0, 1, 0, 0, 1, 0, 0, 0],  # 10
            [-5, 0, 0, 0, 1, 0, 0, 0, 0],  # 30: Age 20
        ],
    )
    assert report.counts == {"static_missing:Gender": 1, "static_unexpected:ICUType": 1}


def test_missing_continuous_value_is_zero_with_indicator():
    static = toy_static()
    static.loc[10, "Age"] = np.nan
    enc = StaticEncoder(["Age"]).fit(static, np.array([10, 20, 30]))
    out = enc.transform(static, np.array([10]))
    assert out.tolist() == [[0.0, 1.0]]


def test_subject_without_static_row_is_named():
    enc = StaticEncoder(COLUMNS).fit(toy_static(), np.array([10, 20]))
    with pytest.raises(DataError, match=r"no static row for subject_id \[404\]"):
        enc.transform(toy_static(), np.array([10, 404]))
    with pytest.raises(DataError, match="missing columns"):
        StaticEncoder(["Height"]).fit(toy_static(), np.array([10]))


def test_state_round_trip():
    enc = StaticEncoder(COLUMNS).fit(toy_static(), np.array([10, 20, 30]))
    state = json.loads(json.dumps(enc.state_dict(), allow_nan=False))
    back = StaticEncoder.from_state_dict(state)
    ids = np.array([30, 10, 20])
    np.testing.assert_array_equal(
        back.transform(toy_static(), ids), enc.transform(toy_static(), ids)
    )
    with pytest.raises(ValueError, match="unknown keys"):
        StaticEncoder.from_state_dict({**state, "typo": 0})
