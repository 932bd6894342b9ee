"""Subject-level stratified splits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medseq.tasks.splits import strata, stratified_kfold, stratified_split


@st.composite
def labelled_subjects(draw):
    """Classes with >= 10 subjects each, or >= 100 distinct continuous values."""
    if draw(st.booleans()):
        counts = draw(st.lists(st.integers(10, 40), min_size=1, max_size=4))
        y = np.repeat(np.arange(len(counts)), counts)
    else:
        values = st.floats(0, 100, allow_nan=False)
        y = np.array(draw(st.lists(values, min_size=100, max_size=160, unique=True)))
    ids = np.array(draw(st.permutations(range(1000, 1000 + len(y)))))
    return ids, y


@settings(max_examples=60, deadline=None)
@given(labelled_subjects(), st.floats(0.1, 0.5), st.integers(0, 2**16))
def test_split_is_disjoint_and_covers_every_subject(data, val_fraction, seed):
    ids, y = data
    train, val = stratified_split(ids, y, val_fraction=val_fraction, random_state=seed)
    assert len(np.intersect1d(train, val)) == 0
    assert sorted(np.concatenate([train, val]).tolist()) == sorted(ids.tolist())
    assert len(train) > 0 and len(val) > 0


def test_split_is_stratified_and_reproducible():
    ids = np.arange(1000)
    y = (ids % 7 == 0).astype(int)  # 143 positives
    train, val = stratified_split(ids, y, val_fraction=0.2, random_state=3)
    assert len(val) == 200 and abs(y[val].mean() - y.mean()) < 0.01
    again = stratified_split(ids, y, val_fraction=0.2, random_state=3)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])
    other = stratified_split(ids, y, val_fraction=0.2, random_state=4)
    assert not np.array_equal(val, other[1])


def test_continuous_label_is_stratified_on_quantile_bins():
    y = np.linspace(0.0, 100.0, 500)
    assert len(np.unique(strata(y))) == 10
    _, val = stratified_split(np.arange(500), y, val_fraction=0.2)
    assert abs(np.median(y[val]) - np.median(y)) < 5.0


def test_kfold_puts_every_subject_in_one_validation_fold():
    ids, y = np.arange(100, 200), np.arange(100) % 2
    folds = stratified_kfold(ids, y, n_splits=5, random_state=0)
    assert len(folds) == 5
    vals = np.concatenate([val for _, val in folds])
    assert sorted(vals.tolist()) == ids.tolist()
    for train, val in folds:
        assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == 100


@pytest.mark.parametrize(
    ("ids", "y", "kwargs", "message"),
    [
        ([1, 2, 2, 3], [0, 1, 0, 1], {}, "subject_ids must be unique .* got 2 twice"),
        ([1, 2, 3], [0, 1], {}, "y has 2 labels for 3 subject_ids"),
        ([1, 2, 3, 4], [0.0, np.nan, 1, 1], {}, r"y must not contain NaN \(first at position 1\)"),
        ([1, 2, 3, 4, 5], [0, 0, 0, 0, 1], {}, "class 1 of y has 1 subject"),
        ([1, 2, 3, 4], [0, 0, 1, 1], {"val_fraction": 1.0}, r"val_fraction must be in \(0, 1\)"),
    ],
)
def test_split_errors(ids, y, kwargs, message):
    with pytest.raises(ValueError, match=message):
        stratified_split(ids, y, **kwargs)


def test_kfold_errors():
    with pytest.raises(ValueError, match="n_splits must be >= 2, got 1"):
        stratified_kfold([1, 2], [0, 1], n_splits=1)
    with pytest.raises(ValueError, match="has 2 subject"):
        stratified_kfold(range(6), [0, 0, 0, 0, 1, 1], n_splits=3)
