"""What a run of an ``occurrence = "every"`` task writes: several samples per patient.

On real Synthea FHIR R4 patients (a prediction at every adult check-up): the prediction
files name the patient in ``subject_id`` and the prediction time in its own columns; the
test CIs of the run and of ``medseq evaluate`` resample patients (a cluster bootstrap),
which is wider than, and differs from, resampling the samples one by one, and is the
per-sample bootstrap itself when every patient has one sample.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from medseq.cli import app
from medseq.evaluation import metrics_with_ci
from medseq.evaluation.bootstrap import cluster_resample_indices, resample_indices
from medseq.evaluation.multi import bootstrap_table, multiclass_metrics

CHECKUP = "http://snomed.info/sct|185349003"
N_BOOT = 400
CONFIG = """
name = "synthea-every-small"
seeds = [0]

[data]
dataset = "fhir_r4"
train = "{path}"
test = ""
task = "acute_6m_every_checkup_small"
protocol = "subject"
cv_folds = 2

[task.prediction_time]
anchor = ["{checkup}"]
occurrence = "every"

[task.cohort]
min_age_years = 18

[task.label]
codes = ["ENCOUNTER/EMER", "ENCOUNTER/IMP"]
within_hours = 4383

[task.observation]
window_hours = 26298
visit_hours = 24

[features]
min_count = 2

[model]
kind = "doctorai"
embedding_size = 8
hidden_size = 8

[train]
epochs = 2
batch_size = 32
num_threads = 1
progress = false

[evaluate]
n_boot = {n_boot}
"""


@pytest.fixture(scope="module")
def every_run(synthea_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("every")
    path = out / "task.toml"
    path.write_text(CONFIG.format(path=synthea_folder, checkup=CHECKUP, n_boot=N_BOOT))
    result = CliRunner().invoke(app, ["train", str(path), "-o", str(out / "run")])
    assert result.exit_code == 0, result.output
    return out / "run"


def test_prediction_files_name_the_patient_and_the_prediction_time(every_run, synthea):
    test = pd.read_csv(every_run / "test_predictions.csv")
    val = pd.read_csv(every_run / "val_predictions.csv")
    for frame in (test, val):
        assert list(frame.columns[:3]) == ["subject_id", "prediction_time", "prediction_time_hours"]
        assert frame["subject_id"].duplicated().any()  # several check-ups of one patient
        assert not frame.duplicated(["subject_id", "prediction_time_hours"]).any()
        assert set(frame["subject_id"]) <= set(synthea.origin.index)
    # each row is one of that patient's check-ups, at its time on both clocks
    ev = synthea.events
    checkups = set(
        zip(
            ev.loc[ev["code"] == CHECKUP, "subject_id"],
            ev.loc[ev["code"] == CHECKUP, "time"],
            strict=True,
        )
    )
    assert all(
        (s, t) in checkups
        for s, t in zip(test["subject_id"], test["prediction_time_hours"], strict=True)
    )
    origin = pd.to_datetime(synthea.origin.reindex(test["subject_id"]).to_numpy(), utc=True)
    when = pd.DatetimeIndex(pd.to_datetime(test["prediction_time"], utc=True))
    hours = (when - origin).total_seconds().to_numpy() / 3600.0
    np.testing.assert_allclose(hours, test["prediction_time_hours"].to_numpy(), atol=1 / 3600)
    # the test and validation patients are apart
    assert not set(test["subject_id"]) & set(val["subject_id"])


def _width(ci) -> float:
    return ci.hi - ci.lo


def test_run_and_evaluate_resample_patients_not_samples(every_run, synthea_folder):
    from medseq.experiment import evaluate_bundle

    test = pd.read_csv(every_run / "test_predictions.csv")
    y, p, patient = test["y_true"].to_numpy(), test["y_pred"].to_numpy(), test["subject_id"]
    assert 0 < y.sum() < len(y)
    saved = json.loads((every_run / "results.json").read_text())
    per_sample = metrics_with_ci(y, p, n_boot=N_BOOT, threshold=saved["threshold"])
    cluster = metrics_with_ci(y, p, n_boot=N_BOOT, threshold=saved["threshold"], groups=patient)
    # the run's test CIs are the cluster bootstrap's (the CSV's float text: to 1e-6)
    for name in ("auroc", "auprc", "brier"):
        np.testing.assert_allclose(saved["test_metrics"][name], list(cluster[name]), rtol=1e-6)
        assert cluster[name].point == per_sample[name].point
        assert cluster[name] != per_sample[name]
    print(
        f"\n{len(y)} test samples of {patient.nunique()} patients: AUROC 95% CI per sample "
        f"{per_sample['auroc'].lo:.3f}-{per_sample['auroc'].hi:.3f}, by patient "
        f"{cluster['auroc'].lo:.3f}-{cluster['auroc'].hi:.3f}"
    )
    assert _width(cluster["auroc"]) > _width(per_sample["auroc"])
    assert _width(cluster["brier"]) > _width(per_sample["brier"])
    # medseq evaluate on the training file scores the same test part the same way
    evaluated = evaluate_bundle(every_run / "bundle", synthea_folder, n_boot=N_BOOT)
    for name in ("auroc", "brier"):
        np.testing.assert_allclose(list(evaluated[name]), saved["test_metrics"][name], rtol=1e-6)


def test_one_sample_per_patient_is_the_per_sample_bootstrap(every_run):
    test = pd.read_csv(every_run / "test_predictions.csv")
    first = test.drop_duplicates("subject_id")  # one check-up per patient
    y, p, patient = first["y_true"].to_numpy(), first["y_pred"].to_numpy(), first["subject_id"]
    assert 0 < y.sum() < len(y)
    for stratified in (True, False):
        a = resample_indices(y, 100, 3, stratified)
        b = cluster_resample_indices(y, patient.to_numpy(), 100, 3, stratified)
        np.testing.assert_array_equal(a, np.stack(b))
    assert metrics_with_ci(y, p, n_boot=N_BOOT) == metrics_with_ci(
        y, p, n_boot=N_BOOT, groups=patient
    )
    # the multiclass table's loop too
    prob = np.stack([1 - p, p], axis=1)

    def table(yy, pp):
        return multiclass_metrics(yy, pp, ["no", "yes"])

    a = bootstrap_table(table, y, prob, n_boot=50)
    b = bootstrap_table(table, y, prob, n_boot=50, groups=patient.to_numpy())
    assert a.keys() == b.keys()
    np.testing.assert_equal([list(v) for v in a.values()], [list(v) for v in b.values()])


def test_cluster_resamples_take_whole_patients():
    y = np.array([0, 1, 0, 0, 1, 0], dtype=float)
    groups = np.array(["a", "a", "b", "c", "c", "c"])
    for row in cluster_resample_indices(y, groups, 50, 0, stratified=True):
        drawn = pd.Series(groups[row]).value_counts()
        sizes = {"a": 2, "b": 1, "c": 3}
        assert all(n % sizes[g] == 0 for g, n in drawn.items())
        assert 0 < y[row].sum() < len(row)  # a patient with a positive in every resample
    with pytest.raises(ValueError, match="groups names the patients of 3 samples"):
        cluster_resample_indices(y, groups[:3], 5)


def test_medseq_predict_names_the_patient_with_torch_and_onnx(every_run, synthea_folder, tmp_path):
    pytest.importorskip("onnxruntime")
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(every_run / "bundle", bundle)
    runner, data = CliRunner(), ["--data", str(synthea_folder)]
    for args in (
        ["export", str(bundle), "--format", "onnx"],
        ["predict", str(bundle), *data, "-o", str(tmp_path / "t.csv")],
        ["predict", str(bundle), *data, "--runtime", "onnx", "-o", str(tmp_path / "o.csv")],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    by_torch, by_onnx = pd.read_csv(tmp_path / "t.csv"), pd.read_csv(tmp_path / "o.csv")
    assert list(by_torch.columns[:3]) == ["subject_id", "prediction_time", "prediction_time_hours"]
    assert list(by_onnx.columns) == list(by_torch.columns)
    keys = ["subject_id", "prediction_time", "prediction_time_hours"]
    pd.testing.assert_frame_equal(by_onnx[keys], by_torch[keys])
    np.testing.assert_allclose(by_onnx["risk"], by_torch["risk"], atol=1e-5)
    assert by_torch["subject_id"].duplicated().any()
    # the run's test rows are among them, with the same patient, time and risk
    test = pd.read_csv(every_run / "test_predictions.csv")
    both = test.merge(by_torch, on=keys)
    assert len(both) == len(test)
    np.testing.assert_allclose(both["y_pred"], both["risk"], atol=1e-5)
