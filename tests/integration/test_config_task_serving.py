"""`medseq serve` on a config-task bundle: a FHIR R4 Bundle of one real Synthea patient is
answered with the task's prediction at the prediction time, equal to the trained run's
own test prediction for that patient; then `evaluate`, `report` and `explain` on the same
bundle. The model (RETAIN, which `medseq explain` covers) is trained here by `medseq train`
on 80 real Synthea patients."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from config_tasks import ACUTE_3Y, small_config, write_config
from medseq.cli import app
from medseq.serving.api import create_app
from medseq.serving.settings import ServeSettings
from medseq.sources.fhir_r4 import subject_id_of

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def trained(synthea_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serve_task")
    task = {**ACUTE_3Y, "cohort": {"min_age_years": 18}}  # adults only
    retain = {"kind": "retain", "embedding_size": 8, "alpha_hidden_size": 8, "beta_hidden_size": 8}
    raw = small_config(
        "synthea-serve-small", "fhir_r4", synthea_folder, "acute_3y_serve", task,
        features={"min_count": 2}, model=retain,
    )  # fmt: skip
    config = write_config(out / "task.toml", raw)
    result = CliRunner().invoke(app, ["train", str(config), "-o", str(out / "run")])
    assert result.exit_code == 0, result.output
    return out / "run"


@pytest.fixture(scope="module")
def client(trained):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from medseq.tasks.spec import CONFIG_TASKS

    CONFIG_TASKS._specs.pop("acute_3y_serve", None)  # as in a fresh process: the bundle
    settings = ServeSettings(tokens=(TOKEN,), max_body_bytes=32 << 20)  # carries the task
    with TestClient(create_app(trained / "bundle", settings)) as test_client:
        yield test_client


def _bundles_by_subject(folder: Path) -> dict[int, Path]:
    found = {}
    for path in sorted(folder.glob("*.json")):
        body = json.loads(path.read_text())
        for entry in body["entry"]:
            if entry["resource"]["resourceType"] == "Patient":
                found[subject_id_of(entry["resource"]["id"])] = path
    return found


def test_a_patients_fhir_bundle_gets_the_runs_own_test_prediction(trained, client, synthea_folder):
    expected = pd.read_csv(trained / "test_predictions.csv")
    files = _bundles_by_subject(synthea_folder)
    for row in expected.head(3).itertuples():
        body = json.loads(files[row.subject_id].read_text())  # the whole record
        answer = client.post("/v1/predict", json=body, headers=AUTH)
        assert answer.status_code == 200, answer.text
        item = answer.json()["predictions"][0]
        assert item["prediction_time"] == "2016-01-01T00:00:00+00:00"
        assert item["n_events_used"] > 0 and not item["outside_cohort"]
        np.testing.assert_allclose(item["probabilities"][0], row.y_pred, rtol=1e-5, atol=1e-6)
        # the same instant given as the Bundle's timestamp: the same answer
        stamped = client.post(
            "/v1/predict", json={**body, "timestamp": "2016-01-01T00:00:00Z"}, headers=AUTH
        )
        assert stamped.json()["predictions"][0]["probabilities"] == item["probabilities"]


def test_a_later_timestamp_sees_more_and_the_future_is_refused(trained, client, synthea_folder):
    expected = pd.read_csv(trained / "test_predictions.csv")
    files = _bundles_by_subject(synthea_folder)
    body = json.loads(files[int(expected["subject_id"].to_numpy()[0])].read_text())
    at = {}
    for stamp in ("2016-01-01T00:00:00Z", "2020-06-01T00:00:00Z"):
        answer = client.post("/v1/predict", json={**body, "timestamp": stamp}, headers=AUTH)
        assert answer.status_code == 200, answer.text
        at[stamp] = answer.json()["predictions"][0]
    assert at["2020-06-01T00:00:00Z"]["prediction_time"].startswith("2020-06-01")
    future = client.post(
        "/v1/predict", json={**body, "timestamp": "2999-01-01T00:00:00Z"}, headers=AUTH
    )
    assert future.status_code == 422
    assert future.json()["detail"][0]["loc"] == ["body", "timestamp"]
    assert "later than the server's clock" in future.text
    empty = client.post(
        "/v1/predict", json={**body, "timestamp": "1900-01-01T00:00:00Z"}, headers=AUTH
    )
    assert empty.status_code == 422 and "no event in the task's observation window" in empty.text


def test_bad_bodies_are_refused_by_name(client, synthea_folder):
    plain = client.post("/v1/predict", json={"patients": []}, headers=AUTH)
    assert plain.status_code == 422 and "POST it as a FHIR R4 Bundle" in plain.text
    body = json.loads(next(iter(sorted(synthea_folder.glob("*.json")))).read_text())
    no_patient = {**body, "entry": [e for e in body["entry"]
                                    if e["resource"]["resourceType"] != "Patient"]}  # fmt: skip
    refused = client.post("/v1/predict", json=no_patient, headers=AUTH)
    assert refused.status_code == 422 and "Patient" in refused.text
    card = client.get("/v1/model", headers=AUTH).json()
    assert card["request"]["fhir"]["modality"] == "events"


def test_evaluate_report_and_explain_run_on_the_config_task_bundle(
    trained, synthea_folder, tmp_path
):
    runner = CliRunner()
    bundle, data = str(trained / "bundle"), str(synthea_folder)
    evaluated = runner.invoke(app, ["evaluate", bundle, "--data", data, "--n-boot", "20"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "auroc" in evaluated.output
    html = tmp_path / "report.html"
    report = runner.invoke(
        app, ["report", bundle, "--data", data, "-o", str(html), "--n-boot", "20"]
    )
    assert report.exit_code == 0, report.output
    assert "acute_3y_serve" in html.read_text()
    subject = int(pd.read_csv(trained / "test_predictions.csv")["subject_id"].to_numpy()[0])
    explained = runner.invoke(
        app,
        ["explain", bundle, "--data", data, "--subject", str(subject), "-o", str(tmp_path / "x"),
         "--n-steps", "8"],
    )  # fmt: skip
    assert explained.exit_code == 0, explained.output
    assert any((tmp_path / "x").iterdir())


def test_a_request_is_read_in_the_units_training_chose(
    trained, client, synthea, synthea_folder, tmp_path
):
    """A patient whose own Bundle has another most frequent unit for a code than the
    training data (eGFR in mL/min where training chose mL/min/{1.73_m2} and dropped the
    rest) is read with training's units, so the served risk is the run's, not a risk from
    values training never saw; `medseq predict` on a new export of that patient too."""
    from medseq.bundle import load_bundle
    from medseq.sources import fhir_r4

    chosen = dict(zip(synthea.units["code"], synthea.units["unit"], strict=True))
    stored = load_bundle(trained / "bundle").provenance["request_state"]["units"]
    assert stored == chosen
    expected = pd.read_csv(trained / "test_predictions.csv").set_index("subject_id")["y_pred"]
    files = _bundles_by_subject(synthea_folder)
    checked = 0
    for sid, risk in expected.items():
        own = fhir_r4.read(files[sid]).units
        if all(chosen.get(c) == u for c, u in zip(own["code"], own["unit"], strict=True)):
            continue  # this patient's units agree with training's anyway
        answer = client.post("/v1/predict", json=json.loads(files[sid].read_text()), headers=AUTH)
        assert answer.status_code == 200, answer.text
        served = answer.json()["predictions"][0]["probabilities"][0]
        np.testing.assert_allclose(served, risk, rtol=1e-5, atol=1e-6)
        # and a batch prediction on a new export holding only this patient's file
        alone = tmp_path / str(sid)
        alone.mkdir()
        (alone / files[sid].name).write_bytes(files[sid].read_bytes())
        out = tmp_path / f"{sid}.csv"
        args = ["predict", str(trained / "bundle"), "--data", str(alone), "-o", str(out)]
        predicted = CliRunner().invoke(app, args)
        assert predicted.exit_code == 0, predicted.output
        batch = pd.read_csv(out).set_index("subject_id").loc[sid]
        np.testing.assert_allclose(batch["risk"], risk, rtol=1e-5, atol=1e-6)
        checked += 1
        if checked == 3:
            break
    assert checked > 0  # the 80 patients do hold such a patient
