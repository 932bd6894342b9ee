"""`[data] inner_val_fraction`: an early-stopping part held out of each fold's training ids,
and the per-fold spread of the out-of-fold metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medseq.evaluation import binary_metrics
from medseq.evaluation.scoring import per_fold_summary as _per_fold
from medseq.experiment.config import ExperimentData
from medseq.experiment.data import default_split_ids, hold_out_early_stop


def _labels(n: int = 400, positives: float = 0.2, seed: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(10_000, size=n, replace=False)).astype(np.int64)
    return pd.Series((rng.random(n) < positives).astype(float), index=ids)


def test_early_stop_part_comes_out_of_train_stratified_and_val_is_untouched():
    labels = _labels()
    split = default_split_ids(ExperimentData(cv_folds=4), labels)
    held = hold_out_early_stop(split, labels, fraction=0.25, seed=3)
    assert len(held.early_stop) == 4
    overall = labels.mean()
    for (train, val), (new_train, new_val), stop in zip(
        split.folds, held.folds, held.early_stop, strict=True
    ):
        np.testing.assert_array_equal(new_val, val)
        np.testing.assert_array_equal(np.sort(np.concatenate([new_train, stop])), train)
        assert not np.intersect1d(new_train, stop).size
        assert abs(len(stop) / len(train) - 0.25) < 0.02
        assert abs(labels.loc[stop].mean() - overall) < 0.03  # stratified on the label
    again = hold_out_early_stop(split, labels, fraction=0.25, seed=3)
    for first, second in zip(held.early_stop, again.early_stop, strict=True):
        np.testing.assert_array_equal(first, second)


def test_groups_move_whole():
    labels = _labels(n=600)
    groups = labels.index.to_numpy() // 500  # ~20 patients with many samples each
    split = default_split_ids(ExperimentData(val_fraction=0.2), labels)
    held = hold_out_early_stop(split, labels, fraction=0.3, seed=0, groups=groups)
    group_of = pd.Series(groups, index=labels.index)
    (train, _), stop = held.folds[0], held.early_stop[0]
    assert len(stop) > 0 and len(train) > 0
    assert not set(group_of.loc[train]) & set(group_of.loc[stop])


def test_too_few_patients_is_a_clear_error():
    labels = _labels(n=60)
    split = default_split_ids(ExperimentData(cv_folds=2), labels)
    groups = np.where(labels.index.to_numpy() < 5_000, 0, 1)  # two patients
    with pytest.raises(ValueError, match="too few to hold some out"):
        hold_out_early_stop(split, labels, fraction=0.2, seed=0, groups=groups)


@pytest.mark.parametrize("bad", [-0.1, 1.0])
def test_inner_val_fraction_range(bad):
    with pytest.raises(ValueError, match="inner_val_fraction must be in"):
        ExperimentData(inner_val_fraction=bad)


def test_per_fold_metrics_are_each_folds_own_and_summarised():
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.3).astype(float)
    pred = np.clip(0.3 * y + 0.7 * rng.random(300), 0, 1)
    sizes = [100, 120, 80]

    def table(yy, pp):
        return binary_metrics(yy, pp, threshold=0.5)

    out = _per_fold(table, y, pred, sizes)
    assert len(out["val_folds"]) == 3
    middle = table(y[100:220], pred[100:220])
    assert out["val_folds"][1]["auroc"] == pytest.approx(middle["auroc"])
    aurocs = [f["auroc"] for f in out["val_folds"]]
    mean, sd = out["val_fold_mean_sd"]["auroc"]
    assert mean == pytest.approx(np.mean(aurocs)) and sd == pytest.approx(np.std(aurocs, ddof=1))
    assert sd > 0


def test_a_fold_that_cannot_be_scored_is_reported_not_fatal():
    y = np.array([0.0] * 50 + [0.0, 1.0] * 25)
    pred = np.linspace(0, 1, 100)
    out = _per_fold(lambda yy, pp: binary_metrics(yy, pp, threshold=0.5), y, pred, [50, 50])
    assert "error" in out["val_folds"][0] and "auroc" in out["val_folds"][1]
    assert np.isnan(out["val_fold_mean_sd"]["auroc"][1])  # one fold: no sd
