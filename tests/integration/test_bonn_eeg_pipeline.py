"""Bonn EEG on the real files: the reader, the spec, and ``medseq train / evaluate / report /
explain`` on tiny runs of the shipped configs (40 segments, 2 folds, 1 epoch).

Tiny by design: these show that the commands work on this dataset end to end, not how well
the model does (benchmarks/results/eeg.md has the measured figures).
"""

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medseq.cli import app
from medseq.datasets.registry import StageUnsupported, get_dataset
from medseq.sources import bonn_eeg

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = ["data.max_subjects=40", "data.cv_folds=2", "data.inner_val_fraction=0.25",
        "train.epochs=1", "evaluate.n_boot=20"]  # fmt: skip


@pytest.fixture(scope="session")
def bonn_dir():
    from medseq.paths import dataset_dir

    return dataset_dir("bonn_eeg")


@pytest.fixture(scope="session")
def bonn_data(bonn_dir):
    return get_dataset("bonn_eeg").read(bonn_dir)


@pytest.fixture(scope="session")
def unseen_dir(bonn_dir, tmp_path_factory):
    """Segments 9-12 of each set (ids 90-129), never in the tiny runs' 40 (ids 10-89), as
    real upstream files in a folder of their own."""
    out = tmp_path_factory.mktemp("bonn-unseen")
    with tarfile.open(bonn_dir / bonn_eeg.ARCHIVE) as tf:
        for member in tf:
            name = Path(member.name).name
            if member.isfile() and name[1:4] in ("009", "010", "011", "012"):
                (out / name).write_bytes(tf.extractfile(member).read())
    return out


def test_real_database_reads_as_source_md_says(bonn_data):
    data = bonn_data
    assert len(data.signals) == 500 and data.sets.value_counts().to_dict() == dict.fromkeys(
        "ZONFS", 100
    )
    assert data.report.counts == {
        "samples at the converter maximum 2047 (clipped)": 52 + 18 + 2,
        "upper-case .TXT extension (set N upstream)": 100,
    }
    s001 = data.signals[14]  # id 14 = S001
    assert s001.record_id == "S001" and s001.samples.shape == (4097, 1)
    stds = {k: np.median([data.signals[i].samples.std() for i in data.sets.index[data.sets == k]])
            for k in "ZONFS"}  # fmt: skip
    assert round(stds["Z"]) == 42 and round(stds["S"]) == 276  # SOURCE.md's medians
    spec = get_dataset("bonn_eeg")
    assert spec.labels("seizure", data).sum() == 100
    assert spec.labels("five_set", data).value_counts().to_dict() == dict.fromkeys(range(5), 100)


def test_by_set_folds_are_the_same_for_both_tasks_and_stratified_on_the_set(bonn_data):
    from medseq.experiment.config import ExperimentData

    spec, data = get_dataset("bonn_eeg"), bonn_data
    splits = {}
    for task in ("seizure", "five_set"):
        config = ExperimentData(dataset="bonn_eeg", train="bonn_eeg", test="", task=task,
                                protocol="by_set", cv_folds=10)  # fmt: skip
        splits[task] = spec.protocol("by_set")(config, data, spec.labels(task, data))
    pairs = zip(splits["seizure"].folds, splits["five_set"].folds, strict=True)
    for (_, a_val), (_, b_val) in pairs:
        np.testing.assert_array_equal(np.sort(a_val), np.sort(b_val))
        assert data.sets.loc[a_val].value_counts().to_dict() == dict.fromkeys("ZONFS", 10)
    assert len(splits["seizure"].folds) == 10


def test_band_power_features_separate_seizure_amplitude(bonn_data):
    from medseq.features.signals.band_power import feature_names

    spec, data = get_dataset("bonn_eeg"), bonn_data
    ids = data.sets.index.to_numpy()
    x = spec.summaries(data, ids)
    assert x.shape == (500, len(feature_names())) and np.isfinite(x).all()
    log_std = x[:, feature_names().index("log_std")]
    assert (
        log_std[data.sets.to_numpy() == "S"].mean()
        > log_std[data.sets.to_numpy() == "Z"].mean() + 1
    )


def test_unsupported_stages_say_why():
    spec = get_dataset("bonn_eeg")
    with pytest.raises(StageUnsupported, match=r"bonn_eeg.*no hospital, subject or recording"):
        spec.require("partitions", "federated")
    with pytest.raises(StageUnsupported, match=r"23\.6 s excerpt"):
        spec.require("streaming", "streaming")


def _train(config: str, out: Path) -> dict:
    result = CliRunner().invoke(app, ["train", str(CONFIGS / config), "-o", str(out),
                                      *[a for o in TINY for a in ("--set", o)]])  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("task", ["seizure", "five-set"])
def test_cli_train_evaluate_report_explain_on_a_tiny_run(task, tmp_path, unseen_dir, bonn_dir):
    results = _train(f"bonn-eeg-{task}.toml", tmp_path / "run")
    assert results["config"]["data"]["protocol"] == "by_set"
    bundle = tmp_path / "run" / "bundle"
    runner = CliRunner()
    refused = runner.invoke(app, ["evaluate", str(bundle), "--data", str(bonn_dir)])
    assert refused.exit_code != 0 and "sets no test part" in refused.output
    evaluated = runner.invoke(app, ["evaluate", str(bundle), "--data", str(unseen_dir),
                                    "--n-boot", "20"])  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    assert "accuracy" in evaluated.output
    report = tmp_path / "report.html"
    reported = runner.invoke(app, ["report", str(bundle), "--data", str(unseen_dir),
                                   "--n-boot", "20", "-o", str(report)])  # fmt: skip
    assert reported.exit_code == 0, reported.output
    assert report.stat().st_size > 10_000
    explained = runner.invoke(app, ["explain", str(bundle), "--data", str(unseen_dir),
                                    "--subject", "94", "-o", str(tmp_path / "why")])  # fmt: skip
    assert explained.exit_code == 0, explained.output
    summary = json.loads((tmp_path / "why" / "sample-94.json").read_text())
    assert len(summary["occlusion_drop"]) == 24  # 4097 samples: 23 whole seconds and a part
    assert summary["label"] in ("1", "S")  # id 94 = S009


def test_baseline_runs_on_the_same_folds_with_class_names(tmp_path):
    neural = _train("bonn-eeg-five-set.toml", tmp_path / "neural")
    baseline = _train("bonn-eeg-five-set-hgb.toml", tmp_path / "hgb")
    assert baseline["class_names"] == ["Z", "O", "N", "F", "S"]
    assert baseline["config"]["data"] == neural["config"]["data"] | {"task": "five_set"}
    assert 0.0 <= baseline["val_metrics"]["accuracy"] <= 1.0
    assert len(baseline["val_confusion"]) == 5
