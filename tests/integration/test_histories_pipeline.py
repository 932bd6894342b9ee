"""Patient histories end to end through the runner: MIMIC tables and their MEDS export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from medseq.bundle import load_bundle
from medseq.cli import app
from medseq.experiment import parse_config, run_experiment
from medseq.paths import dataset_dir
from medseq.sources import meds, mimic3

TRAIN = {"epochs": 2, "batch_size": 16, "lr": 3e-3, "progress": False, "num_threads": 1}


def _run(tmp: Path, dataset: str, train: str, task: str, model: dict) -> Path:
    raw = {
        "name": f"{dataset}-{model['kind']}",
        "data": {
            "dataset": dataset,
            "train": train,
            "test": "",
            "task": task,
            "protocol": "subject",
            "val_fraction": 0.25,
        },
        "features": {"level": "three_digit"},
        "model": model,
        "train": TRAIN,
        "evaluate": {"n_boot": 20},
        "output_dir": str(tmp),
    }
    run_experiment(parse_config(raw), progress=False)
    return tmp


@pytest.fixture(scope="module")
def retain_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("retain")
    return _run(
        out,
        "mimic3",
        str(dataset_dir("mimic3demo")),
        "mortality",
        {"kind": "retain", "embedding_size": 8, "alpha_hidden_size": 8, "beta_hidden_size": 8},
    )


def test_retain_mortality_run_and_its_explanation(retain_run, tmp_path):
    results = json.loads((retain_run / "results.json").read_text())
    assert results["task"] == "binary" and 0.0 <= results["test_metrics"]["auroc"][0] <= 1.0
    predictions = pd.read_csv(retain_run / "test_predictions.csv")
    assert len(predictions) == 18  # 20 % of the 89 stays, stratified by subject
    bundle = load_bundle(retain_run / "bundle")
    assert bundle.featurizer.task == "mortality" and bundle.model_config.kind == "retain"
    sample = int(predictions["subject_id"].iloc[0])
    result = CliRunner().invoke(
        app,
        [
            "explain",
            str(retain_run / "bundle"),
            "--data",
            "mimic3demo",
            "--subject",
            str(sample),
            "-o",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "logit" in result.output and "top codes" in result.output
    summary = json.loads((tmp_path / f"sample-{sample}.json").read_text())
    assert summary["risk"] == pytest.approx(predictions["y_pred"].iloc[0], abs=1e-6)
    assert summary["logit"] == pytest.approx(
        summary["bias"] + summary["sum_of_contributions"], abs=1e-5
    )
    assert sum(v["alpha"] for v in summary["visits"]) == pytest.approx(1.0, abs=1e-5)


def test_retain_bundle_predicts_and_evaluates_through_the_spec(retain_run):
    from medseq.experiment.inference import evaluate_bundle, predict_file

    bundle = retain_run / "bundle"
    frame = predict_file(bundle, "mimic3demo")
    assert len(frame) == 89 and set(frame.columns) == {"subject_id", "risk", "decision"}
    trained = json.loads((retain_run / "results.json").read_text())["test_metrics"]
    again = evaluate_bundle(bundle, "mimic3demo", n_boot=20)  # the protocol's test part only
    assert again["auroc"][0] == pytest.approx(trained["auroc"][0])


def test_doctorai_next_visit_from_mimic_and_from_meds_agree(tmp_path):
    model = {"kind": "doctorai", "embedding_size": 8, "hidden_size": 8}
    root = meds.write(mimic3.read(dataset_dir("mimic3demo")), tmp_path / "meds")
    from_tables = _run(tmp_path / "a", "mimic3", "mimic3demo", "next_visit", model)
    from_meds = _run(tmp_path / "b", "meds", str(root), "next_visit", model)
    a = json.loads((from_tables / "results.json").read_text())
    b = json.loads((from_meds / "results.json").read_text())
    assert a["task"] == "multilabel"
    for k in ("recall@10", "recall@20", "recall@30", "micro_auroc"):
        assert 0.0 <= a["test_metrics"][k][0] <= 1.0
        assert a["test_metrics"][k] == b["test_metrics"][k]
    pa = pd.read_csv(from_tables / "test_predictions.csv")
    pb = pd.read_csv(from_meds / "test_predictions.csv")
    pd.testing.assert_frame_equal(pa, pb)
    assert np.array_equal(pa.iloc[:, 0] // 1000, pb.iloc[:, 0] // 1000)
