"""AdrenalMNIST3D's official protocol: the single split, the pooled folds, selection runs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from medseq.datasets.registry import get_dataset
from medseq.experiment import parse_config
from medseq.experiment.config import ExperimentData
from medseq.experiment.data import read_labelled
from medseq.experiment.runner import _load_splits

DATA = "adrenalmnist3d/adrenalmnist3d.npz"


def _config(**data):
    return parse_config(
        {
            "name": "adrenal-split",
            "data": {"dataset": "adrenalmnist3d", "train": DATA, "test": "",
                     "task": "adrenal", "protocol": "official", **data},
            "model": {"kind": "slice_rnn"},
        }
    )  # fmt: skip


def _split(config):
    spec = get_dataset("adrenalmnist3d")
    data, labels = read_labelled(spec, config, config.data.train)
    return data, labels, spec.protocol("official")(config.data, data, labels)


def test_cv_folds_pool_train_and_val_and_leave_the_test_part_alone():
    data, labels, single = _split(_config())
    _, _, pooled = _split(_config(cv_folds=5))
    np.testing.assert_array_equal(pooled.test, single.test)
    np.testing.assert_array_equal(single.test, data.ids("test"))
    train_and_val = np.sort(np.concatenate([data.ids("train"), data.ids("val")]))
    vals = [va for _, va in pooled.folds]
    np.testing.assert_array_equal(np.sort(np.concatenate(vals)), train_and_val)
    positives = labels.loc[train_and_val].mean()
    for tr, va in pooled.folds:
        assert not np.intersect1d(tr, va).size and not np.intersect1d(tr, pooled.test).size
        np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])), train_and_val)
        assert abs(labels.loc[va].mean() - positives) < 0.02  # stratified
    assert len(single.folds) == 1 and len(single.folds[0][1]) == 98


def test_score_test_false_is_a_selection_run_that_never_touches_the_test_part():
    folds, test = _load_splits(_config(cv_folds=3, score_test=False))
    assert len(folds) == 3 and test is None
    folds, test = _load_splits(_config(cv_folds=3))
    assert test is not None and len(test.subject_ids) == 298  # the official test part


def test_score_test_must_be_a_bool():
    with pytest.raises(ValueError, match="score_test must be true or false"):
        ExperimentData(dataset="adrenalmnist3d", task="adrenal", score_test="no")
    config = _config(score_test=False)
    assert replace(config.data, score_test=True).score_test
