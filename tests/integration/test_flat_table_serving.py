"""`medseq serve` on bundles of flat-table exports: a stay's rows of the real eICU demo tables
(dataset "flat_events") and of PhysioNet 2012 exported as flat CSVs (dataset "flat_icu"),
posted as JSON, get the number `medseq predict` writes for that stay from the files,
because the bundle keeps the mapping it was trained with and the rows take the file's path.
The small models are trained here by `medseq train`."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from eicu_small_mapping import MAPPING
from medseq.cli import app
from medseq.paths import dataset_dir
from medseq.serving.api import create_app
from medseq.serving.settings import ServeSettings
from physionet2012_flat import export, read_stays

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EICU_TABLES = ("patient", "treatment", "vitalAperiodic")
EICU_CONFIG = """
name = "eicu-serve-small"
seeds = [0]

[data]
dataset = "flat_events"
train = "{mapping}"
test = ""
task = "eicu_mortality_serve"
protocol = "group"
cv_folds = 2

[task.prediction_time]
anchor = ["ICU_ADMISSION/*"]
offset_hours = 24

[task.cohort]
exclude_codes = ["HOSPITAL_DISCHARGE/*"]

[task.label]
codes = ["HOSPITAL_DISCHARGE/Expired"]
within_hours = 87660
censored = "negative"

[task.observation]
visit_hours = 4

[features]
code_prefixes = ["eicu.", "ICU_ADMISSION/"]
min_count = 5
max_visits = 10

[model]
kind = "doctorai"
embedding_size = 8
hidden_size = 8

[train]
epochs = 1
batch_size = 64
num_threads = 1
progress = false

[evaluate]
n_boot = 20
"""


def _client(bundle: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    settings = ServeSettings(tokens=(TOKEN,), max_body_bytes=16 << 20)
    return TestClient(create_app(bundle, settings))


def _train_and_predict(config: str, out: Path, data: Path) -> pd.DataFrame:
    (out / "run.toml").write_text(config)
    runner = CliRunner()
    trained = runner.invoke(app, ["train", str(out / "run.toml"), "-o", str(out / "run")])
    assert trained.exit_code == 0, trained.output
    csv = out / "predictions.csv"
    bundle = str(out / "run" / "bundle")
    predicted = runner.invoke(app, ["predict", bundle, "--data", str(data), "-o", str(csv)])
    assert predicted.exit_code == 0, predicted.output
    return pd.read_csv(csv)


# -- flat_events: the eICU demo --------------------------------------------------------------
@pytest.fixture(scope="module")
def eicu(tmp_path_factory):
    """A bundle trained on the small eICU mapping, its batch predictions and the tables."""
    out = tmp_path_factory.mktemp("eicu_serve")
    root = dataset_dir("eicu_demo")
    mapping = out / "mapping.toml"
    mapping.write_text(MAPPING.format(root=root))
    batch = _train_and_predict(EICU_CONFIG.format(mapping=mapping), out, mapping)
    tables = {
        name: pd.read_csv(root / f"{name}.csv.gz", dtype=str, keep_default_na=False)
        for name in EICU_TABLES
    }
    from medseq.tasks.spec import CONFIG_TASKS

    CONFIG_TASKS._specs.pop("eicu_mortality_serve", None)  # the bundle carries the task
    with _client(out / "run" / "bundle") as client:
        yield client, batch, tables, out / "run" / "bundle"


def _stay_rows(tables: dict[str, pd.DataFrame], stay: int) -> dict[str, list[dict]]:
    """A stay's rows of each table, as its CSV has them (text cells)."""
    return {
        name: frame[frame["patientunitstayid"] == str(stay)].to_dict("records")
        for name, frame in tables.items()
    }


@pytest.mark.slow
def test_an_eicu_stays_rows_get_medseq_predicts_number(eicu):
    client, batch, tables, _ = eicu
    assert batch["risk"].head(4).std() > 1e-4  # stays differ: the equality is not a constant's
    for row in batch.head(4).itertuples():
        body = {"tables": _stay_rows(tables, int(row.subject_id))}
        answer = client.post("/v1/predict", json=body, headers=AUTH)
        assert answer.status_code == 200, answer.text
        item = answer.json()["predictions"][0]
        assert item["id"] == str(row.subject_id)
        assert item["prediction_hour"] > 0 and item["n_events_used"] > 0
        assert not item["outside_cohort"]
        assert item["unknown_codes"]["n_events"] >= 0
        np.testing.assert_allclose(item["probabilities"][0], row.risk, rtol=1e-5, atol=1e-6)
        # the same hour given in the body, and numbers instead of text: the same answer
        numbers = {
            name: [{k: (int(v) if v.lstrip("-").isdigit() else v) for k, v in r.items()}
                   for r in rows]
            for name, rows in body["tables"].items()
        }  # fmt: skip
        again = client.post(
            "/v1/predict",
            json={"tables": numbers, "prediction_hour": item["prediction_hour"]},
            headers=AUTH,
        )
        assert again.status_code == 200, again.text
        assert again.json()["predictions"][0]["probabilities"] == item["probabilities"]


@pytest.mark.slow
def test_the_bundle_keeps_the_mapping_and_bad_rows_are_counted(eicu):
    client, batch, tables, bundle = eicu
    state = json.loads((bundle / "medseq.json").read_text())["provenance"]["request_state"]
    assert "root" not in state["mapping"] and len(state["mapping"]["events"]) == 5
    treated = set(tables["treatment"]["patientunitstayid"])
    position, stay = next((k, s) for k, s in enumerate(batch["subject_id"]) if str(s) in treated)
    body = {"tables": _stay_rows(tables, stay)}
    row = dict(body["tables"]["treatment"][0], treatmentstring="")  # an empty code
    body["tables"]["treatment"] = [*body["tables"]["treatment"], row]
    answer = client.post("/v1/predict", json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text  # the mapping says on_bad_row = "warn"
    item = answer.json()["predictions"][0]
    assert item["dropped_rows"] == {"bad_row:code": 1}
    expected = batch["risk"].to_numpy()[position]
    np.testing.assert_allclose(item["probabilities"][0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_bad_flat_bodies_are_refused_by_name(eicu):
    client, batch, tables, _ = eicu
    stay = int(batch["subject_id"].to_numpy()[0])
    rows = _stay_rows(tables, stay)
    cases = [
        ({"patients": []}, ["body", "patients"]),
        ({"tables": []}, ["body", "tables"]),
        ({"tables": {**rows, "lab": []}}, ["body", "tables", "lab"]),
        ({"tables": {**rows, "treatment": ["x"]}}, ["body", "tables", "treatment", 0]),
        ({"tables": rows, "prediction_time": "2020-01-01T00:00:00Z"},
         ["body", "prediction_time"]),
        ({"tables": rows, "prediction_hour": "soon"}, ["body", "prediction_hour"]),
        ({"tables": rows, "extra": 1}, ["body", "extra"]),
        ({"tables": {"patient": [{"patientunitstayid": stay, "hospitalid": [1]}]}},
         ["body", "tables", "patient", 0, "hospitalid"]),
        ({"tables": {"treatment": [{"patientunitstayid": stay}]}}, ["body", "tables", "treatment"]),
    ]  # fmt: skip
    for body, loc in cases:
        answer = client.post("/v1/predict", json=body, headers=AUTH)
        assert answer.status_code == 422, (body.keys(), answer.text)
        assert answer.json()["detail"][0]["loc"] == loc, answer.text
    card = client.get("/v1/model", headers=AUTH).json()
    assert card["request"]["request"]["modality"] == "flat_rows"


# -- flat_icu: PhysioNet 2012 as flat CSVs ----------------------------------------------------
ICU_CONFIG = """
name = "flat-icu-serve-small"
seeds = [0]

[data]
dataset = "flat_icu"
train = "{mapping}"
test = ""
task = "label"
val_fraction = 0.25

[features]
delta_scale = "horizon"

[model]
kind = "rnn_classifier"
cell = "gru"
hidden_size = 8
pooling = "mean"

[train]
epochs = 1
batch_size = 64
num_threads = 1
progress = false

[evaluate]
n_boot = 20
"""


@pytest.fixture(scope="module")
def icu(tmp_path_factory):
    """200 stays of PhysioNet 2012 set A exported as flat CSVs, a bundle trained on them and
    its batch predictions."""
    out = tmp_path_factory.mktemp("flat_icu_serve")
    mapping = export(read_stays("a", 200, out / "set-a"), out)
    batch = _train_and_predict(ICU_CONFIG.format(mapping=mapping), out, mapping)
    tables = {
        name: pd.read_csv(out / f"{name}.csv", dtype=str, keep_default_na=False)
        for name in ("events", "static")
    }
    with _client(out / "run" / "bundle") as client:
        yield client, batch, tables


@pytest.mark.slow
def test_a_flat_icu_stays_rows_get_medseq_predicts_number(icu):
    client, batch, tables = icu
    chosen = batch.head(3)
    assert chosen["risk"].std() > 1e-4  # stays differ: the equality is not a constant's
    body = {
        "tables": {
            name: frame[frame["RecordID"].isin(chosen["subject_id"].astype(str))].to_dict("records")
            for name, frame in tables.items()
        }
    }
    answer = client.post("/v1/predict", json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text
    items = {p["id"]: p for p in answer.json()["predictions"]}
    assert sorted(items) == sorted(chosen["subject_id"].astype(str))
    for row in chosen.itertuples():
        item = items[str(row.subject_id)]
        assert item["n_events_used"] > 0 and not item["static_missing"]
        np.testing.assert_allclose(item["probabilities"][0], row.risk, rtol=1e-5, atol=1e-6)
    one = str(chosen["subject_id"].to_numpy()[0])
    events = [r for r in body["tables"]["events"] if r["RecordID"] == one]
    alone = client.post("/v1/predict", json={"tables": {"events": events}}, headers=AUTH)
    assert alone.status_code == 200, alone.text  # no static row: predicted, and flagged
    assert alone.json()["predictions"][0]["static_missing"] is True
    assert alone.json()["predictions"][0]["probabilities"] != items[one]["probabilities"]
    bad = [*events, dict(events[0], Hours="soon")]  # on_bad_row = "raise" (the default)
    refused = client.post("/v1/predict", json={"tables": {"events": bad}}, headers=AUTH)
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"][0]["loc"] == ["body", "tables", "events", len(events), "Hours"]
    twice = [*body["tables"]["static"][:1], *body["tables"]["static"][:1]]
    doubled = client.post(
        "/v1/predict", json={"tables": {"events": events, "static": twice}}, headers=AUTH
    )
    assert doubled.status_code == 422 and "one row per stay" in doubled.text
