"""Multiclass and multilabel tasks through the one runner, bundle, evaluate and report.

Real PhysioNet 2012 stays: length of stay as three classes, and three outcomes as a
multilabel target with missing labels. Small models and few subjects keep this quick;
what is checked is that every stage agrees on the same numbers.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from medseq.bundle import load_bundle
from medseq.experiment import run_experiment
from medseq.experiment.config import parse_config
from medseq.experiment.inference import evaluate_bundle, predict_file

SET_A = "physionet2012/set-a.tar.gz"
SET_B = "physionet2012/set-b.tar.gz"


def _config(tmp_path, task: str):
    return parse_config(
        {
            "name": f"tiny-{task}",
            "data": {"task": task, "max_subjects": 600, "train": SET_A, "test": SET_B},
            "features": {"static_summary": True},
            "model": {"hidden_size": 8, "static_hidden_size": 8},
            "train": {
                "epochs": 3,
                "batch_size": 64,
                "lr": 3e-3,
                "progress": False,
                "num_threads": 1,
                "patience": 3,
            },
            "evaluate": {"n_boot": 50},
            "output_dir": str(tmp_path / task),
        }
    )


@pytest.fixture(scope="module")
def multiclass_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multiclass")
    return run_experiment(_config(tmp, "length_of_stay_class"), progress=False), tmp


@pytest.fixture(scope="module")
def multilabel_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multilabel")
    return run_experiment(_config(tmp, "outcomes"), progress=False), tmp


def test_multiclass_run_reports_per_class_metrics_and_a_confusion_matrix(multiclass_run):
    result, tmp = multiclass_run
    assert result.task == "multiclass" and result.threshold is None
    names = ["up_to_7d", "8_to_14d", "over_14d"]
    assert result.extra["class_names"] == names
    matrix = np.array(result.extra["test_confusion"])
    assert matrix.shape == (3, 3) and matrix.sum() == 600
    point, lo, hi = result.test_metrics["accuracy"]
    assert lo <= point <= hi and point == pytest.approx(np.trace(matrix) / matrix.sum())
    for name in names:
        assert f"recall_{name}" in result.test_metrics
    saved = json.loads((tmp / "length_of_stay_class" / "results.json").read_text())
    assert saved["test_confusion"] == matrix.tolist()


def test_multiclass_bundle_evaluates_and_predicts_like_the_run(multiclass_run):
    result, _ = multiclass_run
    bundle = load_bundle(result.bundle_dir)
    assert bundle.task == "multiclass" and bundle.class_names[0] == "up_to_7d"
    again = evaluate_bundle(result.bundle_dir, SET_B, n_boot=50)
    # evaluate scores every labelled subject of set B, the run its first 600
    assert set(again) == set(result.test_metrics)
    frame = predict_file(result.bundle_dir, SET_B)
    probs = frame[["p_up_to_7d", "p_8_to_14d", "p_over_14d"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert set(frame["prediction"]) <= set(bundle.class_names)


def test_multilabel_run_scores_each_label_on_known_values(multilabel_run):
    result, tmp = multilabel_run
    assert result.task == "multilabel"
    for name in ("in_hospital_death", "death_within_30d", "stay_over_14d"):
        point, lo, hi = result.test_metrics[f"auroc_{name}"]
        assert 0.5 < point < 1.0 and lo <= point <= hi
    mean = np.mean([result.test_metrics[f"auroc_{n}"][0] for n in result.extra["class_names"]])
    assert result.test_metrics["mean_auroc"][0] == pytest.approx(mean)
    frame = __import__("pandas").read_csv(tmp / "outcomes" / "test_predictions.csv")
    assert {"y_stay_over_14d", "p_stay_over_14d"} <= set(frame.columns)


def test_report_of_a_multiclass_bundle_shows_the_evaluated_numbers(multiclass_run, tmp_path):
    from medseq.report import build_report
    from medseq.report.build import ReportConfig

    result, _ = multiclass_run
    report = build_report(
        result.bundle_dir,
        SET_B,
        output=tmp_path / "report.html",
        config=ReportConfig(n_boot=50, max_subjects=600, update_bundle=False),
    )
    html = report.html_path.read_text()
    cell = re.search(r'data-set="internal" data-metric="macro_f1" data-point="([^"]+)"', html)
    assert cell is not None
    assert float(cell.group(1)) == pytest.approx(result.test_metrics["macro_f1"][0])
    assert {"roc_ovr", "confusion_internal"} <= set(report.figure_paths)
    assert "featurised by ICUFeaturizer" not in html  # ICU inputs are described by variable


def test_multiclass_conformal_sets_cover_the_true_class_on_set_b(multiclass_run):
    """Mondrian and marginal sets from the stored validation scores, checked on set B."""
    from medseq.evaluation.conformal import prediction_sets
    from medseq.experiment.data import labels_for, read_set

    result, _ = multiclass_run
    bundle = load_bundle(result.bundle_dir)
    assert bundle.conformal["task"] == "multiclass"
    assert set(bundle.conformal["by_class"]) == {"0", "1", "2"}
    data = read_set("physionet2012", SET_B)
    labels = labels_for("length_of_stay_class", data).dropna().sort_index().iloc[:600]
    y = labels.to_numpy().astype(int)
    probs = bundle.predict(data, labels.index.to_numpy())
    for mondrian in (False, True):
        sets = prediction_sets(bundle, probs, 0.9, mondrian=mondrian)
        assert sets.shape == (600, 3)
        assert 0.84 <= sets[np.arange(600), y].mean() <= 0.96
        assert sets.sum(axis=1).mean() < 3.0  # not every class for every stay
    sets = prediction_sets(bundle, probs, 0.9, mondrian=True)
    for k in range(3):  # the rare long-stay classes get their own coverage
        assert sets[y == k, k].mean() >= 0.75


def test_multilabel_conformal_sets_per_label_skip_missing_labels(multilabel_run):
    from medseq.evaluation.conformal import prediction_sets
    from medseq.report.uncertainty import covered_and_size

    result, tmp = multilabel_run
    bundle = load_bundle(result.bundle_dir)
    labels = bundle.conformal["labels"]
    assert len(labels) == 3
    frame = __import__("pandas").read_csv(tmp / "outcomes" / "test_predictions.csv")
    names = result.extra["class_names"]
    y = frame[[f"y_{n}" for n in names]].to_numpy()
    probs = frame[[f"p_{n}" for n in names]].to_numpy()
    assert np.isnan(y).any()  # some outcomes are unknown, they are not scored
    sets = prediction_sets(bundle, probs, 0.9)
    assert sets.shape == (len(frame), 3, 2)
    covered, size = covered_and_size(bundle.conformal, y, probs, 0.9)
    assert 0.84 <= np.nanmean(covered) <= 0.97 and 1.0 <= size.mean() <= 2.0
