"""Hypothesis properties: the tensors depend on the set of events, not on how it is listed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medseq.features import ICUFeaturizer

SUBJECTS = list(range(1, 7))
CODES = ["A", "B", "C"]
STATIC = pd.DataFrame(
    {"Age": np.linspace(30, 80, len(SUBJECTS)), "ICUType": [1.0, 2, 3, 4, np.nan, 9]},
    index=pd.Index(SUBJECTS, name="subject_id"),
)

# times on a 0.25 h lattice from -1 h to 7 h: bin edges, the window's right edge (6 h),
# out-of-window events and exact ties all occur often
event = st.tuples(
    st.sampled_from(SUBJECTS),
    st.integers(-4, 28).map(lambda q: q / 4),
    st.sampled_from([*CODES, "unknown"]),
    st.one_of(st.none(), st.integers(-50, 50).map(float)),
)
tables = st.lists(event, min_size=0, max_size=40).map(
    lambda rows: pd.DataFrame(rows, columns=["subject_id", "time", "code", "value"]).astype(
        {"subject_id": "int64", "time": "float64", "value": "float64"}
    )
)


@pytest.fixture(scope="module")
def featurizers():
    rng = np.random.default_rng(0)
    n = 200
    train = pd.DataFrame(
        {
            "subject_id": rng.choice(SUBJECTS, n),
            "time": rng.uniform(0, 6, n),
            "code": rng.choice(CODES, n),
            "value": rng.normal(0, 20, n),
        }
    ).sort_values(["subject_id", "time"])
    return [
        ICUFeaturizer(n_steps=4, step_hours=1.5, static_columns=["Age", "ICUType"], **kw).fit(
            train, STATIC, SUBJECTS
        )
        for kw in ({}, {"aggregate": "mean", "impute": "mean", "delta_scale": "log1p"})
    ]


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@settings(max_examples=60, deadline=None)
@given(events=tables, seed=st.integers(0, 2**32 - 1))
def test_row_order_does_not_matter(featurizers, events, seed):
    rng = np.random.default_rng(seed)
    shuffled = events.iloc[rng.permutation(len(events))]
    resorted = shuffled.sort_values(["subject_id", "time"], kind="stable")
    for f in featurizers:
        expected = f.transform(events, STATIC, SUBJECTS)
        report = f.last_transform_report_.counts
        _same(f.transform(shuffled, STATIC, SUBJECTS), expected)
        assert f.last_transform_report_.counts == report
        _same(f.transform(resorted, STATIC, SUBJECTS), expected)


@settings(max_examples=60, deadline=None)
@given(events=tables, order=st.permutations(SUBJECTS))
def test_permuting_subject_ids_permutes_rows(featurizers, events, order):
    for f in featurizers:
        base = f.transform(events, STATIC, SUBJECTS)
        permuted = f.transform(events, STATIC, order)
        rows = [SUBJECTS.index(s) for s in order]
        _same(permuted, {k: v[rows] for k, v in base.items()})


@settings(max_examples=60, deadline=None)
@given(events=tables)
def test_padding_and_shape_invariants(featurizers, events):
    out = featurizers[0].transform(events, STATIC, SUBJECTS)
    lengths = out["lengths"]
    assert ((lengths >= 1) & (lengths <= 4)).all()
    pad = np.arange(4)[None, :] >= lengths[:, None]
    for key in ("values", "mask", "delta"):
        assert not out[key][pad].any(), key
        assert np.isfinite(out[key]).all()
    assert (out["delta"] >= 0).all()
    report = featurizers[0].last_transform_report_
    kept = int(out["mask"].sum()) + report.counts.get("aggregated_in_bin", 0)
    left_out = sum(
        n for k, n in report.counts.items() if not k.startswith(("static", "agg", "sub"))
    )
    assert kept + left_out == len(events)  # every event is used or counted
