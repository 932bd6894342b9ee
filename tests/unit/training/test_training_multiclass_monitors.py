"""Multiclass early stopping can watch the scores a multiclass task reports."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from medseq.training import TrainConfig
from medseq.training.monitor import validation_scores


def test_multiclass_scores_match_scikit_learn_on_labelled_entries():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200).astype(np.float32)
    prob = rng.dirichlet(np.ones(3), 200)
    prob[:80, :] = np.eye(3)[y[:80].astype(int)]  # 80 certain right answers
    y[:10] = np.nan  # unlabelled entries are left out
    scores = validation_scores("multiclass", y, prob)
    truth, guess = y[10:].astype(int), prob[10:].argmax(axis=1)
    assert scores["macro_f1"] == pytest.approx(f1_score(truth, guess, average="macro"))
    assert scores["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(truth, guess))
    assert scores["accuracy"] == pytest.approx((truth == guess).mean())


@pytest.mark.parametrize("monitor", ["macro_f1", "balanced_accuracy", "accuracy"])
def test_multiclass_monitors_are_maximised(monitor):
    config = TrainConfig(task="multiclass", monitor=monitor)
    assert config.monitor_mode == "max"


def test_a_multiclass_monitor_on_a_binary_task_is_refused():
    with pytest.raises(ValueError, match="monitor"):
        TrainConfig(task="binary", monitor="macro_f1")
