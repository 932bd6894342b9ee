"""Conformal sets, intervals and abstention of small bundles trained on real PhysioNet 2012.

The bundles are calibrated on their own validation part of set A (stored at training
time); coverage is checked on 1000 stays of set B, which they never saw.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from medseq.bundle import load_bundle
from medseq.evaluation.conformal import prediction_intervals, prediction_sets
from medseq.evaluation.selective import abstain, confidence_rule
from medseq.experiment.data import labels_for, read_set

SET_B = "physionet2012/set-b.tar.gz"


def _labelled_b(task: str, n: int = 1000):
    data = read_set("physionet2012", SET_B)
    labels = labels_for(task, data).dropna().sort_index().iloc[:n]
    return data, labels


def test_binary_bundle_stores_sorted_validation_scores(trained_gru_bundle):
    bundle = load_bundle(trained_gru_bundle)
    cal = bundle.conformal
    n_val = bundle.provenance["n_subjects"]["val"]
    assert cal["task"] == "binary" and cal["n"] == n_val
    scores = cal["by_class"]["0"] + cal["by_class"]["1"]
    assert len(scores) == n_val and len(cal["confidence"]) == n_val
    for part in (cal["by_class"]["0"], cal["by_class"]["1"], cal["confidence"]):
        assert part == sorted(part) and all(0.0 <= s <= 1.0 for s in part)
    assert cal["abstention"]["rule"] == "non_singleton"
    assert len(json.dumps(cal)) < 40 * n_val  # compact: a few bytes per validation stay


def test_binary_sets_reach_the_requested_coverage_on_set_b(trained_gru_bundle):
    bundle = load_bundle(trained_gru_bundle)
    data, labels = _labelled_b("mortality")
    y = labels.to_numpy().astype(int)
    risk = bundle.predict(data, labels.index.to_numpy())
    sets = prediction_sets(bundle, risk, 0.9)
    coverage = sets[np.arange(len(y)), y].mean()
    assert 0.86 <= coverage <= 0.94  # 1000 stays: the sampling sd is about 0.01
    loose = prediction_sets(bundle, risk, 0.8).sum(axis=1).mean()
    assert loose <= sets.sum(axis=1).mean()  # a lower coverage never needs larger sets
    mondrian = prediction_sets(bundle, risk, 0.9, mondrian=True)
    assert mondrian[y == 1, 1].mean() >= 0.8  # the deaths are covered too, not only survivors


def test_abstention_rules_abstain_on_the_least_certain(trained_gru_bundle):
    bundle = load_bundle(trained_gru_bundle)
    data, labels = _labelled_b("mortality")
    risk = bundle.predict(data, labels.index.to_numpy())
    rule = confidence_rule(bundle.conformal, 0.7)
    held = abstain(bundle.conformal, risk, rule)
    assert 0.2 <= held.mean() <= 0.4  # about 30 % as on validation
    conf = np.maximum(risk, 1 - risk)
    assert conf[held].max() <= conf[~held].min()
    assert abstain(bundle.conformal, risk).any()  # the stored non-singleton rule


def test_predict_cli_adds_sets_and_abstention(trained_gru_bundle, tmp_path):
    from typer.testing import CliRunner

    from medseq.cli import app

    out = tmp_path / "pred.csv"
    args = ["predict", str(trained_gru_bundle), "--data", SET_B, "-o", str(out)]
    cli = CliRunner().invoke(app, [*args, "--coverage", "0.9"])
    assert cli.exit_code == 0, cli.output
    frame = pd.read_csv(out, dtype={"set": str}, keep_default_na=False)
    assert {"risk", "set", "set_size", "abstain"} <= set(frame.columns)
    assert set(frame["set"]) <= {"", "0", "1", "0|1"}
    np.testing.assert_array_equal(frame["set_size"], frame["set"].str.count(r"\d"))
    assert (frame["abstain"].astype(str) == "True").tolist() == (frame["set_size"] != 1).tolist()
    bad = CliRunner().invoke(app, [*args, "--coverage", "1.5"])
    assert bad.exit_code != 0 and "coverage must be in (0, 1)" in bad.output


def test_regression_intervals_cover_length_of_stay(trained_los_bundle):
    bundle = load_bundle(trained_los_bundle)
    assert bundle.conformal["task"] == "regression" and "abstention" not in bundle.conformal
    data, labels = _labelled_b("length_of_stay")
    pred = bundle.predict(data, labels.index.to_numpy())
    interval = prediction_intervals(bundle, pred, 0.9)
    y = labels.to_numpy()
    inside = (interval[:, 0] <= y) & (y <= interval[:, 1])
    assert 0.85 <= inside.mean() <= 0.95
    np.testing.assert_allclose(interval.mean(axis=1), pred)
    with pytest.raises(ValueError, match="classification bundles only"):
        prediction_sets(bundle, pred, 0.9)
