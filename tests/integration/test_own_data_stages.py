"""`medseq evaluate / report / explain` on bundles of the other two bring-your-own-data paths.

`fhir_r4` bundles get these stages in `test_config_task_serving.py`; here the same commands
run unchanged on a `flat_events` bundle (real eICU demo tables mapped by a TOML file,
hospitals held out) and on a `meds_events` bundle (80 real Synthea patients written as MEDS
by the FHIR reader). Each model is RETAIN (the visit model `medseq explain` covers), trained
here by `medseq train` for two epochs, so these are checks that the stages run and agree
with the run, not results.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from config_tasks import ACUTE_3Y, TRAIN_SMALL, small_config, write_config
from eicu_small_mapping import MAPPING, TASK
from medseq.cli import app
from medseq.experiment import evaluate_bundle
from medseq.paths import dataset_dir
from medseq.sources import meds
from medseq.tasks.cohort import build_task
from medseq.tasks.spec import TaskSpec

pytestmark = pytest.mark.slow  # two trainings and three stages each (about a minute)

RETAIN = {"kind": "retain", "embedding_size": 8, "alpha_hidden_size": 8, "beta_hidden_size": 8}


def _train(config: Path, out: Path) -> Path:
    result = CliRunner().invoke(app, ["train", str(config), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def eicu_run(tmp_path_factory) -> tuple[Path, Path]:
    """(run folder, mapping file) of RETAIN on the small eICU mapping, hospitals held out."""
    out = tmp_path_factory.mktemp("eicu_stages")
    mapping = out / "eicu.toml"
    mapping.write_text(MAPPING.format(root=dataset_dir("eicu_demo")))
    features = {"code_prefixes": ["eicu.", "ICU_ADMISSION/"], "min_count": 5, "max_visits": 10}
    raw = small_config(
        "eicu-stages", "flat_events", mapping, "eicu_mortality_stages", TASK,
        features=features, model=RETAIN, protocol="group",
        train_options={**TRAIN_SMALL, "batch_size": 64},
    )  # fmt: skip
    return _train(write_config(out / "task.toml", raw), out / "run"), mapping


@pytest.fixture(scope="module")
def meds_run(synthea, tmp_path_factory) -> tuple[Path, Path]:
    """(run folder, MEDS folder) of RETAIN on Synthea patients written as MEDS."""
    out = tmp_path_factory.mktemp("meds_stages")
    root = synthea.to_meds(out / "meds")
    raw = small_config(
        "meds-stages", "meds_events", root, "acute_3y_meds_stages",
        {**ACUTE_3Y, "cohort": {"min_age_years": 18}}, features={"min_count": 2}, model=RETAIN,
    )  # fmt: skip
    return _train(write_config(out / "task.toml", raw), out / "run"), root


def _stages_run(run: Path, data: Path, task: str, tmp_path: Path) -> None:
    """evaluate gives the run's test AUROC; report names the task; explain writes files."""
    runner = CliRunner()
    bundle = str(run / "bundle")
    evaluated = runner.invoke(app, ["evaluate", bundle, "--data", str(data), "--n-boot", "20"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "auroc" in evaluated.output
    ran = json.loads((run / "results.json").read_text())["test_metrics"]["auroc"][0]
    again = evaluate_bundle(run / "bundle", data, n_boot=20)["auroc"][0]
    assert again == pytest.approx(ran, abs=1e-6)  # the protocol's test part, same model
    html = tmp_path / "report.html"
    report = runner.invoke(
        app, ["report", bundle, "--data", str(data), "-o", str(html), "--n-boot", "20"]
    )
    assert report.exit_code == 0, report.output
    assert task in html.read_text()
    subject = int(pd.read_csv(run / "test_predictions.csv")["subject_id"].to_numpy()[0])
    explained = runner.invoke(
        app,
        ["explain", bundle, "--data", str(data), "--subject", str(subject),
         "-o", str(tmp_path / "x"), "--n-steps", "8"],
    )  # fmt: skip
    assert explained.exit_code == 0, explained.output
    assert any((tmp_path / "x").iterdir())


def test_evaluate_report_and_explain_run_on_a_flat_events_bundle(eicu_run, tmp_path):
    run, mapping = eicu_run
    _stages_run(run, mapping, "eicu_mortality_stages", tmp_path)


def test_evaluate_report_and_explain_run_on_a_meds_events_bundle(meds_run, tmp_path):
    run, root = meds_run
    _stages_run(run, root, "acute_3y_meds_stages", tmp_path)


def _predict(bundle: Path, data: Path, out: Path) -> pd.DataFrame:
    result = CliRunner().invoke(app, ["predict", str(bundle), "--data", str(data), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return pd.read_csv(out).set_index("subject_id")


def test_the_future_changes_no_prediction_of_medseq_predict(meds_run, tmp_path):
    """Issue 18's leakage check end to end (file -> reader -> task -> features -> model):
    every event at or after each sample's prediction time is moved a century later with
    its code and value changed, and a new code is added at the prediction time; written as
    another MEDS folder, `medseq predict` gives every sample the same risk, to the bit."""
    run, root = meds_run
    events, origin, _ = meds.read_events(root)
    spec = TaskSpec.from_dict({**ACUTE_3Y, "cohort": {"min_age_years": 18}})
    samples = build_task(events, origin, spec).samples
    cutoff = samples.set_index("subject_id")["cutoff"]
    late = events["time"].to_numpy() >= cutoff.reindex(events["subject_id"]).to_numpy()
    assert late.sum() > 1000  # nan cut-offs (subjects outside the cohort) compare False
    changed = events.copy()
    changed.loc[late, "time"] += 1e6
    changed.loc[late, "code"] = "LEAK|" + changed.loc[late, "code"].str[::-1]
    changed.loc[late, "value"] = 123.0
    answer = pd.DataFrame(
        {"subject_id": cutoff.index, "time": cutoff.to_numpy(), "code": "LEAK/answer", "value": 1.0}
    )
    changed = pd.concat([changed, answer]).sort_values(["subject_id", "time"], kind="stable")
    future = meds.write_events(changed.reset_index(drop=True), origin, tmp_path / "future")
    before = _predict(run / "bundle", root, tmp_path / "before.csv")
    after = _predict(run / "bundle", future, tmp_path / "after.csv")
    ids = samples["subject_id"].to_numpy()
    assert len(ids) > 30 and before.index.isin(ids).all()
    risk = [c for c in before.columns if c.startswith(("risk", "prob", "p_"))]
    assert risk, before.columns
    pd.testing.assert_frame_equal(before.loc[ids, risk], after.loc[ids, risk], check_exact=True)
