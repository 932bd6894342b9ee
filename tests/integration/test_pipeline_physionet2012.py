"""The whole path on real data: config -> read -> features -> train -> bundle -> CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from medseq.bundle import BundleError, load_bundle
from medseq.cli import app
from medseq.experiment import parse_config, run_experiment
from medseq.experiment.data import labels_for, read_set

SMOKE = {
    "name": "smoke",
    "seeds": [0, 1],
    "data": {"max_subjects": 300, "val_fraction": 0.25},
    "features": {"static_summary": True, "delta_scale": "horizon"},
    "model": {"cell": "gru", "hidden_size": 8, "pooling": "mean", "input_delta": True},
    "train": {"epochs": 2, "monitor": "auroc", "progress": False},
    "evaluate": {"n_boot": 50},
}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    config = replace(parse_config(SMOKE), output_dir=str(out))
    return config, run_experiment(config, progress=False)


def test_run_writes_bundle_results_and_predictions(smoke_run):
    config, result = smoke_run
    saved = json.loads((pd.io.common.Path(config.output_dir) / "results.json").read_text())
    assert saved["test_metrics"]["auroc"][0] == pytest.approx(result.test_metrics["auroc"][0])
    point, lo, hi = result.test_metrics["auroc"]
    assert lo <= point <= hi
    assert 0.0 < result.threshold < 1.0
    bundle = load_bundle(result.bundle_dir)
    assert len(bundle.members) == 2  # one per seed
    assert bundle.provenance["n_subjects"] == {
        "train": 225,
        "val": 75,
        "early_stop": 0,
        "test": 300,
    }
    assert len(bundle.provenance["files"]["train"]["sha256"]) == 64
    assert bundle.calibration["fitted_on"] == "out-of-fold validation predictions"


def test_bundle_reproduces_the_test_predictions_exactly(smoke_run):
    config, result = smoke_run
    saved = pd.read_csv(pd.io.common.Path(config.output_dir) / "test_predictions.csv")
    data = read_set("physionet2012", config.data.test)
    bundle = load_bundle(result.bundle_dir)
    again = bundle.predict(data, saved["subject_id"].to_numpy())
    np.testing.assert_allclose(again, saved["y_pred"].to_numpy(), rtol=0, atol=1e-7)


def test_tampered_bundle_is_refused(smoke_run, tmp_path):
    _, result = smoke_run
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(result.bundle_dir, copy)
    manifest = json.loads((copy / "medseq.json").read_text())
    manifest["threshold"] = 0.01
    (copy / "medseq.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="content hash mismatch"):
        load_bundle(copy)
    shutil.copy(f"{result.bundle_dir}/medseq.json", copy / "medseq.json")
    weights = bytearray((copy / "weights.safetensors").read_bytes())
    weights[-1] ^= 0xFF
    (copy / "weights.safetensors").write_bytes(bytes(weights))
    with pytest.raises(BundleError, match="content hash mismatch"):
        load_bundle(copy)


def test_cli_evaluate_and_predict(smoke_run, tmp_path):
    _, result = smoke_run
    runner = CliRunner()
    data = "physionet2012/set-b.tar.gz"
    evaluated = runner.invoke(
        app, ["evaluate", result.bundle_dir, "--data", data, "--n-boot", "20"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert "| auroc |" in evaluated.output
    out = tmp_path / "pred.csv"
    predicted = runner.invoke(app, ["predict", result.bundle_dir, "--data", data, "-o", str(out)])
    assert predicted.exit_code == 0, predicted.output
    frame = pd.read_csv(out)
    assert len(frame) == 4000 and frame["subject_id"].is_unique
    assert frame["risk"].between(0, 1).all()
    assert set(frame["decision"]) <= {0, 1}


def test_cli_reports_bad_input_without_traceback(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(app, ["train", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2
    assert "error: config file" in missing.output and "Traceback" not in missing.output
    not_bundle = runner.invoke(app, ["evaluate", str(tmp_path), "--data", "x"])
    assert not_bundle.exit_code == 2
    assert "not a medseq bundle" in not_bundle.output


def test_length_of_stay_labels_exclude_missing():
    data = read_set("physionet2012", "physionet2012/set-a.tar.gz")
    days = labels_for("length_of_stay", data)
    assert days.notna().all() and (days > 0).all()
    assert len(days) + days.attrs["excluded"].get("missing_length_of_stay", 0) == 4000


def test_resume_of_a_finished_run_reproduces_its_metrics(smoke_run):
    config, result = smoke_run
    again = run_experiment(config, resume=True, progress=False)
    assert again.test_metrics["auroc"] == result.test_metrics["auroc"]
    assert again.threshold == result.threshold


def test_selection_run_without_test_set(tmp_path):
    raw = {**SMOKE, "data": {**SMOKE["data"], "test": ""}, "seeds": [0]}
    config = replace(parse_config(raw), output_dir=str(tmp_path))
    result = run_experiment(config, progress=False)
    assert result.test_metrics == {}
    assert 0.0 <= result.val_metrics["auroc"] <= 1.0
    assert load_bundle(result.bundle_dir).provenance["n_subjects"]["test"] == 0
    assert not (tmp_path / "test_predictions.csv").exists()
