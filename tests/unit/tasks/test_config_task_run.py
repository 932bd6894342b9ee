"""`medseq train` on a config task: a recurrent model and a count baseline in one run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from config_tasks import ACUTE_3Y, small_config, write_config
from medseq.cli import app
from medseq.datasets.event_tasks import EventTaskData
from medseq.datasets.registry import get_dataset
from medseq.experiment.config import load_config
from medseq.tasks.spec import CONFIG_TASKS


def _config(path, dataset: str, train) -> Path:
    """The run of these tests on ``train``: Doctor AI and a logistic-regression baseline."""
    config = small_config(
        "synthea-acute-small",
        dataset,
        train,
        "acute_3y_small",
        ACUTE_3Y,
        features={"min_count": 2},
        model={"kind": "doctorai", "embedding_size": 8, "hidden_size": 8},
        baseline={"kind": "logistic_regression"},
    )
    return write_config(path, config)


def test_train_prints_model_and_baseline_metrics_on_subject_splits(synthea_folder, tmp_path):
    path = _config(tmp_path / "task.toml", "fhir_r4", synthea_folder)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "synthea-acute-small: test metrics" in result.output
    assert "baseline logistic_regression, test metrics" in result.output
    saved = json.loads((out / "results.json").read_text())
    assert saved["config"]["task"]["label"]["within_hours"] == 26298
    for metrics in (saved["test_metrics"], saved["baseline"]["test_metrics"]):
        point, low, high = metrics["auroc"]
        assert 0.0 <= low <= point <= high <= 1.0
    assert (out / "bundle" / "medseq.json").exists()
    bundle = json.loads((out / "bundle" / "medseq.json").read_text())
    sizes = bundle["provenance"]["n_subjects"]
    assert sizes["test"] > 0 and sizes["train"] > 0 and sizes["val"] > 0
    _bundle_predicts_alone(out, synthea_folder)


def _bundle_predicts_alone(out, folder):
    """The saved bundle carries its task: a process that never parsed the config predicts."""
    import pandas as pd

    from medseq.bundle import load_bundle

    CONFIG_TASKS._specs.pop("acute_3y_small", None)  # as in a fresh process
    bundle = load_bundle(out / "bundle")
    spec = bundle.spec()  # registers the task recorded in the bundle
    data = spec.read(folder)
    spec.labels(bundle.dataset_task, data)
    expected = pd.read_csv(out / "test_predictions.csv")
    got = bundle.predict(data, expected["subject_id"].to_numpy())
    np.testing.assert_allclose(got, expected["y_pred"].to_numpy(), rtol=1e-5, atol=1e-6)


def test_subject_protocol_keeps_each_subject_on_one_side(synthea_folder, tmp_path):
    path = _config(tmp_path / "task.toml", "fhir_r4", synthea_folder)
    config = load_config(path)
    spec = get_dataset("fhir_r4")
    data = spec.read(synthea_folder)
    labels = spec.labels(config.data.task, data)
    split = spec.protocol("subject")(config.data, data, labels)  # SplitIds refuses overlaps
    assert split.test is not None
    for train, val in split.folds:
        parts = np.concatenate([train, val, split.test])
        assert np.array_equal(np.sort(parts), np.sort(labels.index.to_numpy()))
        assert len(np.unique(parts)) == len(parts)
    assert labels.loc[split.test].sum() > 0  # stratified: positives in the test part


def test_meds_export_gives_the_same_task(synthea, tmp_path):
    root = synthea.to_meds(tmp_path / "meds")
    path = _config(tmp_path / "task.toml", "meds_events", root)
    config = load_config(path)
    from_meds = get_dataset("meds_events")
    data = from_meds.read(root)
    labels = from_meds.labels(config.data.task, data)
    fhir = get_dataset("fhir_r4")
    direct = EventTaskData(events=synthea.events, origin=synthea.origin, report=synthea.report)
    expected = fhir.labels(config.data.task, direct)
    assert labels.equals(expected)
    assert data.cohort is not None and direct.cohort is not None
    assert data.cohort.equals(direct.cohort)


def test_cohort_command_prints_the_table_and_writes_meds_labels(synthea_folder, tmp_path):
    import pandas as pd

    path = _config(tmp_path / "task.toml", "fhir_r4", synthea_folder)
    labels_out = tmp_path / "labels" / "labels.parquet"
    result = CliRunner().invoke(app, ["cohort", str(path), "--labels-out", str(labels_out)])
    assert result.exit_code == 0, result.output
    assert "| died_before_prediction_time |" in result.output
    frame = pd.read_parquet(labels_out)
    assert list(frame.columns) == [
        "subject_id", "prediction_time", "boolean_value", "integer_value", "float_value",
        "categorical_value",
    ]  # fmt: skip
    assert frame["boolean_value"].dtype == bool
    assert frame[["integer_value", "float_value", "categorical_value"]].isna().all().all()
    n_subjects = frame["subject_id"].nunique()
    positive = int(frame["boolean_value"].sum())
    assert f"samples: {len(frame)} of {n_subjects} subjects, positive: {positive}" in (
        result.output
    )
    # every prediction time is the configured date, as an instant
    assert (frame["prediction_time"] == pd.Timestamp("2016-01-01")).all()
