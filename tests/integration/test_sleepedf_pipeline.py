"""Sleep-EDF end to end on the real files: read, train (tiny), evaluate, report, explain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medseq.cli import app
from medseq.datasets import sleepedf
from medseq.paths import dataset_dir

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "sleepedf-bigru.toml"
TINY = ["train.epochs=1", "model.hidden_size=8", "model.num_layers=1",
        "data.inner_val_fraction=0.0", "evaluate.n_boot=10"]  # fmt: skip


def _folder(tmp: Path, subjects: tuple[int, ...]) -> Path:
    """A folder of links to the real files of ``subjects`` (both nights each)."""
    tmp.mkdir(parents=True, exist_ok=True)
    for path in dataset_dir("sleepedf_features").glob("SC40*"):
        if int(path.name[3:5]) in subjects:
            (tmp / path.name).symlink_to(path)
    return tmp


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("sleepedf")
    return _folder(root / "train", (0, 1, 2)), _folder(root / "unseen", (9,))


@pytest.fixture(scope="module")
def tiny_run(folders, tmp_path_factory):
    out = tmp_path_factory.mktemp("sleepedf-run")
    args = ["train", str(CONFIG), "-o", str(out), "--set", f"data.train={folders[0]}"]
    cli = CliRunner().invoke(app, args + [x for s in TINY for x in ("--set", s)])
    assert cli.exit_code == 0, cli.output
    return out, cli.output


def test_the_real_folder_reads_as_source_md_describes():
    data = sleepedf.read(dataset_dir("sleepedf_features"))
    counts = data.report.counts
    assert len(data.nights) == 20 and data.report.n_events == 52_647
    assert counts["movement epochs between rows (dropped upstream)"] == 32
    assert counts["scored hypnogram epochs past the end of a truncated feature file"] == 1851
    labels = sleepedf._labels("sleep_stage", data)
    kept = int(np.isfinite(labels.to_numpy()).sum())
    assert kept + counts["epochs outside the window around sleep (trimmed)"] == 52_647
    # The window keeps every sleep epoch and drops most of the day's wake.
    stages = labels.to_numpy()
    assert int((stages > 0).sum()) == 52_647 - 35_994
    assert 0.15 < (stages == 0).sum() / kept < 0.35


def test_train_scores_every_held_out_night_per_epoch(tiny_run):
    out, printed = tiny_run
    results = json.loads((out / "results.json").read_text())
    assert len(results["val_folds"]) == 3  # one fold per subject
    for name in ("accuracy", "macro_f1", "kappa", "f1_N1", "f1_REM"):
        assert 0.0 <= results["val_metrics"][name] <= 1.0
    matrix = np.array(results["val_confusion"])
    assert matrix.shape == (5, 5)
    n_epochs = sum(int(np.isfinite(row).sum()) for row in _labels_of(out))
    assert matrix.sum() == n_epochs  # every labelled epoch of the 6 nights, once
    assert "kappa" in printed and "confusion matrix" in printed


def _labels_of(out: Path) -> np.ndarray:
    config = json.loads((out / "results.json").read_text())["config"]
    data = sleepedf.read(Path(config["data"]["train"]))
    return sleepedf._labels("sleep_stage", data).to_numpy()


def test_evaluate_report_and_explain_on_an_unseen_subject(tiny_run, folders, tmp_path):
    bundle = str(tiny_run[0] / "bundle")
    cli = CliRunner().invoke(app, ["evaluate", bundle, "--data", str(folders[1]), "--n-boot", "10"])
    assert cli.exit_code == 0, cli.output
    assert "| kappa |" in cli.output and "| f1_N3 |" in cli.output
    refused = CliRunner().invoke(app, ["evaluate", bundle, "--data", str(folders[0])])
    assert refused.exit_code != 0 and "has not seen" in refused.output
    html = tmp_path / "report.html"
    args = ["report", bundle, "--data", str(folders[1]), "--n-boot", "10", "-o", str(html)]
    cli = CliRunner().invoke(app, [*args, "--no-update-bundle"])
    assert cli.exit_code == 0, cli.output
    assert "kappa" in html.read_text()
    args = ["explain", bundle, "--data", str(folders[1]), "--subject", "4091", "-o", str(tmp_path)]
    cli = CliRunner().invoke(app, args)
    assert cli.exit_code == 0, cli.output
    explained = json.loads((tmp_path / "sample-4091.json").read_text())
    assert len(explained["predicted"]) == explained["n_steps"] > 800
    assert set(explained["occlusion"]["Fpz-Cz_delta"]) == {"W", "N1", "N2", "N3", "REM"}
    assert (tmp_path / "sample-4091-steps.png").stat().st_size > 10_000


def test_the_per_epoch_baseline_runs_through_the_runner(folders, tmp_path):
    from medseq.experiment import parse_config, run_experiment

    raw = {
        "name": "sleepedf-hgb",
        "data": {"dataset": "sleepedf", "train": str(folders[0]), "test": "",
                 "task": "sleep_stage", "protocol": "loso"},
        "baseline": {"kind": "hist_gradient_boosting", "params": {"max_iter": 20}},
        "evaluate": {"n_boot": 10},
        "output_dir": str(tmp_path),
    }  # fmt: skip
    result = run_experiment(parse_config(raw), progress=False)
    assert result.extra["class_names"] == ["W", "N1", "N2", "N3", "REM"]
    assert 0.3 < result.val_metrics["accuracy"] <= 1.0 and "kappa" in result.val_metrics
