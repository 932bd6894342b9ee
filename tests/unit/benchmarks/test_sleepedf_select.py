"""benchmarks/sleepedf_select.py: inner-validation scores that choose EEG configs (issue 17)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

from sleepedf_select import _scores, inner_scores

TINY = ["train.epochs=1", "model.hidden_size=8", "model.num_layers=1", "features.per_night=true"]


def test_one_seed_ensemble_score_is_the_members_own_early_stopping_score():
    # Real nights, first LOSO fold: the bundle-side rescoring of the inner early-stopping
    # subjects must reproduce the trainer's monitor exactly, or the ensemble figures used to
    # choose a config would not be comparable with the single-seed ones.
    result = inner_scores(TINY, n_folds=1)
    assert result["monitor"] == "macro_f1" and len(result["per_member"]) == 1
    assert result["inner_ensemble"]["macro_f1"] == pytest.approx(result["inner_best_score"])
    assert 0.0 < result["inner_ensemble"]["accuracy"] <= 1.0


def test_scores_follow_the_task():
    y = np.array([0.0, 1.0, 1.0, np.nan])
    binary = _scores("binary", y, np.array([0.2, 0.9, 0.4, 0.5]))
    assert binary == {"accuracy": pytest.approx(2 / 3), "auroc": 1.0}
    multi = _scores("multiclass", np.array([0.0, 1.0, 2.0]), np.eye(3)[[0, 1, 1]])
    assert multi["accuracy"] == pytest.approx(2 / 3) and 0 < multi["macro_f1"] < 1
