"""The REST API on real stays: batch JSON and FHIR, streaming, model card, metrics."""

from __future__ import annotations

import numpy as np
import pytest
from serving_helpers import AUTH, TOKEN, batch_risk, event_rows, fhir_bundle, stays

from medseq.datasets.physionet2012_serving import code_table
from medseq.serving.api import create_app
from medseq.serving.settings import ServeSettings

TOL = 1e-5


@pytest.fixture(scope="module")
def client(trained_gru_bundle, test_client_cls, tmp_path_factory):
    db = tmp_path_factory.mktemp("api") / "state.sqlite"
    app = create_app(trained_gru_bundle, ServeSettings(tokens=(TOKEN,), state_db=str(db)))
    with test_client_cls(app) as c:
        yield c


def test_batch_json_equals_bundle_predict(client, gru_bundle, setb):
    patients = list(stays(setb, 500, 6))
    body = {
        "patients": [
            {"patient_id": f"p{sid}", "static": static, "events": event_rows(events)}
            for sid, events, static in patients
        ]
    }
    answer = client.post("/v1/predict", json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text
    out = answer.json()
    assert out["model_version"].startswith("sha256:")
    ids = np.array([sid for sid, _, _ in patients])
    expected = gru_bundle.predict(setb, ids)
    assert out["task"] == "binary" and out["class_names"] == ["mortality"]
    assert [p["id"] for p in out["predictions"]] == [f"p{sid}" for sid in ids]
    got = np.array([p["probabilities"][0] for p in out["predictions"]])
    assert np.abs(got - expected).max() <= TOL
    decisions = [p["predicted"] == ["mortality"] for p in out["predictions"]]
    assert decisions == [bool(r >= gru_bundle.threshold) for r in got]


def test_batch_fhir_equals_bundle_predict(client, gru_bundle, setb):
    patients = [(f"p{sid}", ev, st) for sid, ev, st in stays(setb, 520, 3)]
    bundle = fhir_bundle(patients, code_table())
    answer = client.post("/v1/predict", json=bundle, headers=AUTH)
    assert answer.status_code == 200, answer.text
    got = {p["id"]: p for p in answer.json()["predictions"]}
    for (pid, _, _), (sid, events, _) in zip(patients, stays(setb, 520, 3), strict=True):
        risk = got[pid]["probabilities"][0]
        assert abs(risk - batch_risk(gru_bundle, events, setb, sid)) <= TOL
        assert got[pid]["skipped"] == []


def test_unknown_codes_and_units_are_reported(client):
    events = [
        {"time": 0.5, "code": "HR", "value": 80.0},
        {"time": 1.0, "code": "8310-5", "value": 98.6, "unit": "[degF]"},
        {"time": 1.0, "code": "Glucose", "value": 5.0, "unit": "kg"},
        {"time": 1.5, "code": "Sugar", "value": 5.0},
        {"time": 50.0, "code": "HR", "value": 80.0},
    ]
    body = {"patients": [{"patient_id": "x1", "events": events}]}
    answer = client.post("/v1/predict", json=body, headers=AUTH).json()["predictions"][0]
    reasons = {s["index"]: s["reason"] for s in answer["skipped"]}
    assert reasons[2].startswith("unit_mismatch") and reasons[3] == "unknown_code"
    assert reasons[4] == "after_window" and answer["n_events_used"] == 2


def test_streaming_over_http_equals_batch(client, gru_bundle, setb):
    sid, events, static = next(stays(setb, 600, 1))
    rows = event_rows(events)
    hours = np.floor(events.time.to_numpy())
    first = True
    for hour in np.unique(hours):
        chunk = [r for r, h in zip(rows, hours, strict=True) if h == hour]
        body = {"observations": chunk} | ({"static": static} if first else {})
        answer = client.post(f"/v1/patients/s{sid}/observations", json=body, headers=AUTH)
        assert answer.status_code == 200, answer.text
        first = False
    state = client.get(f"/v1/patients/s{sid}", headers=AUTH).json()
    assert abs(state["risk"] - batch_risk(gru_bundle, events, setb, sid)) <= TOL
    assert state["n_observations"] == len(rows)
    assert isinstance(state["alert"], bool)
    final = client.delete(f"/v1/patients/s{sid}", headers=AUTH)
    assert final.status_code == 200 and final.json()["risk"] == state["risk"]
    assert client.get(f"/v1/patients/s{sid}", headers=AUTH).status_code == 404


def test_streaming_fhir_uses_the_encounter_admission(client, gru_bundle, setb):
    sid, events, static = next(stays(setb, 610, 1))
    table = code_table()
    half = len(events) // 2
    for k, part in enumerate((events.iloc[:half], events.iloc[half:])):
        bundle = fhir_bundle([(f"f{sid}", part, static if k == 0 else {})], table)
        if k == 1:  # the second message has no Encounter: the stored admission is used
            kept = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
            bundle["entry"] = kept
        answer = client.post(f"/v1/patients/f{sid}/observations", json=bundle, headers=AUTH)
        assert answer.status_code == 200, answer.text
    assert abs(answer.json()["risk"] - batch_risk(gru_bundle, events, setb, sid)) <= TOL
    assert answer.json()["admission_time"].startswith("2024-03-01T00:00:00")


def test_model_card_and_metrics(client):
    card = client.get("/v1/model", headers=AUTH).json()
    assert card["model_config"]["cell"] == "gru" and card["streaming"]["supported"]
    assert len(card["variables"]) == 37 and "auroc" in card["metrics"]["test"]
    assert card["codes"]["HR"]["loinc"] == ["8867-4"]
    client.post("/v1/patients/m1/observations", json={"observations": []}, headers=AUTH)
    text = client.get("/metrics", headers=AUTH).text
    assert "# TYPE medseq_requests_total counter" in text
    assert 'route="/v1/patients/{patient_id}/observations"' in text
    assert "medseq_request_duration_seconds_bucket" in text
    active = [line for line in text.splitlines() if line.startswith("medseq_active_patients ")]
    assert active and float(active[0].split()[1]) >= 1
    assert client.get("/healthz").json() == {"status": "ok"}


def test_bidirectional_model_serves_batch_but_refuses_streaming(
    gru_bundle, test_client_cls, tmp_path
):
    from serving_helpers import bundle_like

    from medseq.bundle import save_bundle

    save_bundle(bundle_like(gru_bundle, bidirectional=True, hidden_size=4), tmp_path)
    app = create_app(tmp_path, ServeSettings(tokens=(TOKEN,)))
    with test_client_cls(app) as c:
        body = {"observations": [{"time": 1.0, "code": "HR", "value": 80.0}]}
        refused = c.post("/v1/patients/b1/observations", json=body, headers=AUTH)
        assert refused.status_code == 409 and "bidirectional" in refused.json()["detail"]
        batch = {"patients": [{"patient_id": "b1", "events": body["observations"]}]}
        assert c.post("/v1/predict", json=batch, headers=AUTH).status_code == 200
        assert c.get("/v1/model", headers=AUTH).json()["streaming"]["supported"] is False
