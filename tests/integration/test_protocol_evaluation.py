"""A bundle trained under a split protocol is evaluated on that protocol's test part.

AdrenalMNIST3D ships train/val/test in one file. `medseq evaluate` and `medseq report` on
that file must score the official test volumes only, reproducing the training run's test
metrics, and say so, instead of mixing in the volumes the model was trained on. A slice
stack is not an ICU grid, so the report takes the modality-agnostic path.
"""

from __future__ import annotations

import re

import pytest

from medseq.experiment import run_experiment
from medseq.experiment.config import parse_config
from medseq.experiment.inference import evaluate_bundle

DATA = "adrenalmnist3d/adrenalmnist3d.npz"
N_OFFICIAL_TEST = 298


@pytest.fixture(scope="module")
def adrenal_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("adrenal")
    config = parse_config(
        {
            "name": "tiny-adrenal",
            "data": {
                "dataset": "adrenalmnist3d",
                "train": DATA,
                "test": "",
                "task": "adrenal",
                "protocol": "official",
            },
            "model": {
                "kind": "slice_rnn",
                "channels": [4],
                "slice_embedding_size": 8,
                "hidden_size": 4,
                "attention_size": 4,
            },
            "train": {"epochs": 1, "batch_size": 64, "progress": False, "num_threads": 1},
            "evaluate": {"n_boot": 100},
            "output_dir": str(out / "run"),
        }
    )
    return run_experiment(config, progress=False)


def test_evaluate_on_the_training_file_scores_the_protocol_test_part(adrenal_run, caplog):
    with caplog.at_level("WARNING"):
        again = evaluate_bundle(adrenal_run.bundle_dir, DATA, n_boot=100)
    assert "only the test part of its 'official' split protocol (298 samples)" in caplog.text
    point, lo, hi = adrenal_run.test_metrics["accuracy_at_0.5"]
    assert lo <= point <= hi and adrenal_run.val_metrics["accuracy_at_0.5"] > 0
    for name in ("auroc", "accuracy", "brier", "accuracy_at_0.5"):
        assert again[name][0] == pytest.approx(adrenal_run.test_metrics[name][0], abs=1e-6)


def test_report_of_a_slice_stack_bundle_uses_the_generic_sections(adrenal_run, tmp_path):
    from medseq.report import build_report
    from medseq.report.build import ReportConfig

    report = build_report(
        adrenal_run.bundle_dir,
        DATA,
        output=tmp_path / "adrenal.html",
        config=ReportConfig(n_boot=100, update_bundle=False),
    )
    html = report.html_path.read_text()
    assert f"{N_OFFICIAL_TEST} samples" in html
    assert "test part of its &#39;official&#39; split protocol" in html
    cell = re.search(r'data-set="internal" data-metric="auroc" data-point="([^"]+)"', html)
    assert float(cell.group(1)) == pytest.approx(adrenal_run.test_metrics["auroc"][0], abs=1e-6)
    assert {"roc_pr", "calibration", "confusion", "decision_curve"} <= set(report.figure_paths)
    inputs = report.model_card["model_details"]["inputs"]
    assert set(inputs) == {"featurizer", "arrays"} and inputs["featurizer"] == "volume"
    assert inputs["arrays"]["slices"][0] == "N"  # the featurizer's describe(), named dims


def test_onnx_export_of_a_volume_bundle_matches_torch(adrenal_run, tmp_path):
    """Once refused (ICU grids only); every bundle kind exports now."""
    import shutil

    from medseq.experiment.inference import predict_file
    from medseq.serving.onnx import export_onnx, predict_file_onnx

    target = tmp_path / "bundle"
    shutil.copytree(adrenal_run.bundle_dir, target)
    export_onnx(target)
    by_onnx, by_torch = predict_file_onnx(target, DATA), predict_file(target, DATA)
    assert (by_onnx["subject_id"] == by_torch["subject_id"]).all()
    assert (by_onnx["risk"] - by_torch["risk"]).abs().max() <= 1e-5


def test_selection_run_on_pooled_folds_then_one_evaluation_of_its_bundle(tmp_path):
    """`medseq train --no-test` on 2 pooled folds: out-of-fold metrics only, no test file;
    `medseq evaluate` of its bundle then scores the untouched official test part."""
    from typer.testing import CliRunner

    from medseq.bundle import load_bundle
    from medseq.cli import app

    config = tmp_path / "cv.toml"
    config.write_text(
        'name = "tiny-adrenal-cv"\nseeds = [0]\n'
        f'[data]\ndataset = "adrenalmnist3d"\ntrain = "{DATA}"\ntest = ""\n'
        'task = "adrenal"\nprotocol = "official"\ncv_folds = 2\n'
        '[model]\nkind = "slice_rnn"\nchannels = [4]\nslice_embedding_size = 8\n'
        "hidden_size = 4\nattention_size = 4\ntest_time_flips = true\n"
        "[train]\nepochs = 1\nbatch_size = 64\nprogress = false\nnum_threads = 1\n"
    )
    out = tmp_path / "run"
    cli = CliRunner().invoke(app, ["train", str(config), "--no-test", "-o", str(out)])
    assert cli.exit_code == 0, cli.output
    assert "validation (out-of-fold) metrics" in cli.output and "auroc:" in cli.output
    assert "(2 folds: " in cli.output  # the per-fold mean and sd beside the pooled figure
    assert not (out / "test_predictions.csv").exists()
    bundle = load_bundle(out / "bundle")
    assert len(bundle.members) == 2 and bundle.model_config.test_time_flips
    assert bundle.provenance["split"]["cv_folds"] == 2
    assert bundle.provenance["n_subjects"]["test"] == 0
    scored = evaluate_bundle(out / "bundle", DATA, n_boot=20)
    assert 0.0 <= scored["auroc"][0] <= 1.0
    assert "validation" in bundle.metrics and not bundle.metrics["test"]
