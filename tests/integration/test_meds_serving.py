"""`medseq serve` on a `meds_events` bundle: a patient's MEDS rows, posted as JSON in the
dataset's own codes, get the number `medseq predict` writes for that patient from the MEDS
folder. The MEDS folder is 80 real Synthea patients written by the FHIR reader's MEDS export;
the small model is trained here by `medseq train`."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from medseq.cli import app
from medseq.serving.api import create_app
from medseq.serving.settings import ServeSettings

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONFIG = """
name = "meds-serve-small"
seeds = [0]

[data]
dataset = "meds_events"
train = "{path}"
test = ""
task = "acute_3y_meds_serve"
protocol = "subject"
cv_folds = 2

[task.prediction_time]
date = "2016-01-01T00:00:00Z"

[task.label]
codes = ["ENCOUNTER/EMER", "ENCOUNTER/IMP"]
within_hours = 26298

[task.observation]
window_hours = 26298

[features]
min_count = 2

[model]
kind = "doctorai"
embedding_size = 8
hidden_size = 8

[train]
epochs = 2
batch_size = 16
num_threads = 1
progress = false

[evaluate]
n_boot = 20
"""


@pytest.fixture(scope="module")
def served(synthea, tmp_path_factory):
    """The bundle's client, `medseq predict`'s table and the MEDS rows of every subject."""
    import pyarrow.parquet as pq

    out = tmp_path_factory.mktemp("meds_serve")
    root = synthea.to_meds(out / "meds")
    (out / "task.toml").write_text(CONFIG.format(path=root))
    runner = CliRunner()
    trained = runner.invoke(app, ["train", str(out / "task.toml"), "-o", str(out / "run")])
    assert trained.exit_code == 0, trained.output
    bundle, csv = out / "run" / "bundle", out / "predictions.csv"
    predicted = runner.invoke(app, ["predict", str(bundle), "--data", str(root), "-o", str(csv)])
    assert predicted.exit_code == 0, predicted.output
    rows = pd.concat(
        [pq.read_table(p).to_pandas() for p in sorted((root / "data").glob("**/*.parquet"))]
    )
    from medseq.tasks.spec import CONFIG_TASKS

    CONFIG_TASKS._specs.pop("acute_3y_meds_serve", None)  # the bundle carries the task
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    settings = ServeSettings(tokens=(TOKEN,), max_body_bytes=16 << 20)
    with TestClient(create_app(bundle, settings)) as client:
        yield client, pd.read_csv(csv), rows


def _json_rows(rows: pd.DataFrame, subject: int) -> list[dict]:
    """A subject's MEDS rows as a client sends them: ISO times, null for no time or value."""
    mine = rows[rows["subject_id"] == subject]
    return [
        {
            "subject_id": int(r.subject_id),
            "time": None if pd.isna(r.time) else pd.Timestamp(r.time).isoformat(),
            "code": str(r.code),
            "numeric_value": None if pd.isna(r.numeric_value) else float(r.numeric_value),
        }
        for r in mine.itertuples()
    ]


@pytest.mark.slow
def test_a_patients_meds_rows_get_medseq_predicts_number(served):
    client, batch, rows = served
    chosen = batch.head(3)
    assert chosen["risk"].std() > 1e-4  # patients differ: the equality is not a constant's
    for row in chosen.itertuples():
        body = {"rows": _json_rows(rows, int(row.subject_id))}
        answer = client.post("/v1/predict", json=body, headers=AUTH)  # the task's own date
        assert answer.status_code == 200, answer.text
        item = answer.json()["predictions"][0]
        assert item["id"] == str(row.subject_id)
        assert item["prediction_time"].startswith("2016-01-01T00:00:00")
        assert item["n_events_used"] > 0
        np.testing.assert_allclose(item["probabilities"][0], row.risk, rtol=1e-5, atol=1e-6)
        stamped = client.post(
            "/v1/predict", json={**body, "prediction_time": "2016-01-01T00:00:00Z"}, headers=AUTH
        )
        assert stamped.json()["predictions"][0]["probabilities"] == item["probabilities"]


@pytest.mark.slow
def test_unknown_codes_are_counted_not_dropped_silently(served):
    client, batch, rows = served
    subject = int(batch["subject_id"].to_numpy()[0])
    body = {"rows": _json_rows(rows, subject)}
    plain = client.post("/v1/predict", json=body, headers=AUTH).json()["predictions"][0]
    strange = [{"subject_id": subject, "time": "2015-06-01T10:00:00", "code": "LOCAL/XYZ-1"}] * 3
    answer = client.post("/v1/predict", json={"rows": body["rows"] + strange}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    item = answer.json()["predictions"][0]
    unknown = item["unknown_codes"]
    assert unknown["n_events"] == plain["unknown_codes"]["n_events"] + 3
    assert "LOCAL/XYZ-1" in unknown["codes"]
    assert item["n_events_used"] == plain["n_events_used"] + 3
    # (the probability may still move: an event opens its visit, as it does in training)
    assert 0.0 <= item["probabilities"][0] <= 1.0


@pytest.mark.slow
def test_malformed_meds_rows_are_refused_by_row_and_field(served):
    client, batch, rows = served
    good = _json_rows(rows, int(batch["subject_id"].to_numpy()[0]))
    cases = [
        ({**good[1], "time": "yesterday"}, "time"),
        ({**good[1], "subject_id": "abc"}, "subject_id"),
        ({k: v for k, v in good[1].items() if k != "code"}, "code"),
        ({**good[1], "numeric_value": "high"}, "numeric_value"),
    ]
    for bad, field in cases:
        body = {"rows": [good[0], bad, *good[2:]]}
        answer = client.post("/v1/predict", json=body, headers=AUTH)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"] == ["body", "rows", 1, field], answer.text
    future = client.post(
        "/v1/predict", json={"rows": good, "prediction_time": "2999-01-01T00:00:00Z"}, headers=AUTH
    )
    assert future.status_code == 422 and "later than the server's clock" in future.text
    for body, loc in (({"rows": []}, ["body", "rows"]), ({"rows": good, "x": 1}, ["body", "x"])):
        answer = client.post("/v1/predict", json=body, headers=AUTH)
        assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == loc
    fhir = client.post(
        "/v1/predict", json={"resourceType": "Bundle", "type": "collection"}, headers=AUTH
    )
    assert fhir.status_code == 422 and "codes of a MEDS dataset are its own" in fhir.text
