"""Features chosen in the config: a time grid over the numeric codes of a config task
(mask, Δt, normalisation fitted on training samples), on real Synthea FHIR R4 patients."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from config_tasks import ACUTE_3Y, small_config, write_config
from medseq.cli import app
from medseq.datasets.event_tasks import EventTaskData, _fit, _labels, _sizes, _transform
from medseq.tasks import inputs as task_inputs
from medseq.tasks.spec import CONFIG_TASKS, TaskSpec

HBA1C = "http://loinc.org|4548-4"
TASK = {
    "prediction_time": {"anchor": ["http://snomed.info/sct|185349003"], "occurrence": "every"},
    "cohort": {"min_age_years": 18},
    "label": {"codes": ["ENCOUNTER/EMER", "ENCOUNTER/IMP"], "within_hours": 4383},
    "observation": {"window_hours": 26298},
}
GRID = {"kind": "grid", "step_hours": 730.5, "n_steps": 36, "delta_scale": "horizon"}


@pytest.fixture(scope="module")
def labelled(synthea):
    CONFIG_TASKS.register("grid_checkup", TaskSpec.from_dict(TASK))
    data = EventTaskData(events=synthea.events, origin=synthea.origin, report=synthea.report)
    labels = _labels("grid_checkup", data)
    return data, labels


def test_the_grid_ends_at_each_prediction_time_and_is_fitted_on_training_samples(labelled):
    data, labels = labelled
    ids = labels.index.to_numpy()
    train, other = ids[: len(ids) // 2], ids[len(ids) // 2 :]
    featurizer = _fit(GRID, data, train)
    assert _sizes(featurizer) == {"input_size": featurizer.n_features, "static_size": 4}
    assert HBA1C in featurizer.feature_names_
    out = _transform(featurizer, data, other)
    n, t, f = out["values"].shape
    assert (n, t) == (len(other), 36) and f == featurizer.n_features
    # the mask of one sample and one code, by hand: a value in month k before the cutoff
    col = featurizer.feature_names_.index(HBA1C)
    inputs = data.history.events
    hits = 0
    for k, sid in enumerate(other[:200]):
        mine = inputs[(inputs["subject_id"] == sid) & (inputs["code"] == HBA1C)]
        cutoff = data.samples.loc[sid, "cutoff"]
        bins = np.floor((mine["time"].to_numpy() - (cutoff - 36 * 730.5)) / 730.5)
        expected = np.zeros(36)
        expected[bins[(bins >= 0) & (bins < 36)].astype(int)] = 1
        np.testing.assert_array_equal(out["mask"][k, :, col], expected)
        hits += int(expected.sum())
    assert hits > 0
    # normalisation comes from the training samples only: refitting on others changes it
    again = _fit(GRID, data, other)
    assert again.state_dict() != featurizer.state_dict()
    assert _fit(GRID, data, train).state_dict() == featurizer.state_dict()


def test_events_after_the_prediction_time_do_not_reach_the_grid(labelled, synthea):
    data, labels = labelled
    ids = labels.index.to_numpy()
    samples = data.samples
    featurizer = _fit(GRID, data, ids[::2])
    rank = samples.groupby("subject_id").cumcount().to_numpy()
    for k in np.unique(rank)[:4]:
        group = samples[rank == k]
        before = _transform(featurizer, data, group.index.to_numpy())
        cut = group.set_index("subject_id")["cutoff"]
        ev = synthea.events
        known = ev["subject_id"].isin(cut.index).to_numpy()
        late = known & (ev["time"].to_numpy() >= cut.reindex(ev["subject_id"]).to_numpy())
        changed = ev.copy()
        changed.loc[late, "value"] = changed.loc[late, "value"] * 7 + 100
        changed.loc[late, "time"] = changed.loc[late, "time"] + 1e5
        assert late.sum() > 100
        inputs = task_inputs.input_events(changed, group)
        history = task_inputs.as_history(inputs, group)
        other = EventTaskData(
            events=changed, origin=data.origin, report=data.report, task=data.task,
            samples=group, history=history,
        )  # fmt: skip
        after = _transform(featurizer, other, group.index.to_numpy())
        for name in before:
            assert before[name].tobytes() == after[name].tobytes(), (name, k)


def test_bad_grid_options_are_named(labelled):
    data, labels = labelled
    ids = labels.index.to_numpy()
    with pytest.raises(ValueError, match="kind must be one of"):
        _fit({"kind": "image"}, data, ids)
    with pytest.raises(ValueError, match="static_columns of a grid are fixed"):
        _fit({**GRID, "static_columns": ["Age"]}, data, ids)


def _config(path, train) -> Path:
    """A GRU on the grid of the acute-care task, ``train`` the Synthea folder."""
    grid = {"kind": "grid", "step_hours": 730.5, "n_steps": 36, "delta_scale": "horizon"}
    config = small_config(
        "synthea-grid-small",
        "fhir_r4",
        train,
        "grid_acute_small",
        ACUTE_3Y,
        features=grid,
        model={"kind": "rnn_classifier", "cell": "gru", "hidden_size": 8},
    )
    return write_config(path, config)


def test_train_a_gru_on_the_grid_of_a_config_task(synthea_folder, tmp_path):
    path = _config(tmp_path / "grid.toml", synthea_folder)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "results.json").read_text())
    point, low, high = saved["test_metrics"]["auroc"]
    assert 0.0 <= low <= point <= high <= 1.0
    bundle = json.loads((out / "bundle" / "medseq.json").read_text())
    assert bundle["featurizer"]["kind"] == "ICUFeaturizer"
