"""Security and bad input: 401 without a token, 413 when too large, 422 naming the field,
never a 5xx, and no patient identifier or value in the logs."""

from __future__ import annotations

import json
import logging

import pytest
from serving_helpers import AUTH, TOKEN

from medseq.serving.api import create_app
from medseq.serving.settings import ServeSettings, read_tokens

OK_EVENT = {"time": 1.0, "code": "HR", "value": 80.0}
NOW_PLUS_YEAR = "2999-01-01T00:00:00+00:00"


@pytest.fixture(scope="module")
def client(trained_gru_bundle, test_client_cls):
    settings = ServeSettings(tokens=(TOKEN,), max_body_bytes=64 * 1024)
    with test_client_cls(create_app(trained_gru_bundle, settings)) as c:
        yield c


def _obs(**fields):
    return {"observations": [OK_EVENT | fields]}


def _fhir(resource_fields: dict, drop: tuple = ()) -> dict:
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/e1"},
        "effectiveDateTime": "2024-01-01T10:00:00+00:00",
        "valueQuantity": {"value": 80, "system": "http://unitsofmeasure.org", "code": "/min"},
    } | resource_fields
    for key in drop:
        obs.pop(key)
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": obs}]}


STREAM = "/v1/patients/e1/observations"
OBS0 = ["body", "observations", 0]
RES0 = ["body", "entry", 0, "resource"]
DATE_ONLY, NAIVE = "2024-01-01", "2024-01-01T10:00:00"
NAN = b'{"observations": [{"time": NaN, "code": "HR", "value": 1}]}'
INF = b'{"observations": [{"time": 1, "code": "HR", "value": Infinity}]}'
MALFORMED = [
    # (path, body, expected loc prefix)
    (STREAM, b"{not json", ["body"]),
    (STREAM, NAN, [*OBS0, "time"]),
    (STREAM, INF, [*OBS0, "value"]),
    (STREAM, _obs(value="80"), [*OBS0, "value"]),
    (STREAM, _obs(value="abc"), [*OBS0, "value"]),
    (STREAM, _obs(value=None), [*OBS0, "value"]),
    (STREAM, _obs(time=1e9), [*OBS0, "time"]),
    (STREAM, _obs(code=""), [*OBS0, "code"]),
    (STREAM, _obs(extra=1), [*OBS0, "extra"]),
    (STREAM, {"observations": "HR"}, ["body", "observations"]),
    (STREAM, {"observations": [OK_EVENT] * 1001}, ["body", "observations"]),
    (STREAM, {"observations": [], "static": {"Age": -3}}, ["body", "static", "Age"]),
    (STREAM, {"observations": [], "static": {"Shoe": 42}}, ["body", "static", "Shoe"]),
    (STREAM, [1, 2, 3], ["body"]),
    ("/v1/patients/bad%20id/observations", _obs(), ["path", "patient_id"]),
    ("/v1/predict", {"patients": []}, ["body", "patients"]),
    ("/v1/predict", {"patients": [{"patient_id": "a"}] * 2}, ["body", "patients"]),
    ("/v1/predict", {"patients": [{"events": []}]}, ["body", "patients", 0, "patient_id"]),
    ("/v1/predict", {"resourceType": "Bundle", "entry": "x"}, ["body", "entry"]),
    ("/v1/predict", _fhir({}, drop=("status",)), RES0),
    ("/v1/predict", _fhir({"valueQuantity": {"value": "x"}}), [*RES0, "valueQuantity", "value"]),
    ("/v1/predict", _fhir({"effectiveDateTime": DATE_ONLY}), [*RES0, "effectiveDateTime"]),
    ("/v1/predict", _fhir({"effectiveDateTime": NAIVE}), [*RES0, "effectiveDateTime"]),
    ("/v1/predict", _fhir({"effectiveDateTime": NOW_PLUS_YEAR}), [*RES0, "effectiveDateTime"]),
    ("/v1/predict", _fhir({}, drop=("effectiveDateTime",)), [*RES0, "effectiveDateTime"]),
    ("/v1/predict", _fhir({}, drop=("subject",)), [*RES0, "subject"]),
    ("/v1/predict", _fhir({"subject": {"reference": "Group/1"}}), [*RES0, "subject", "reference"]),
    (STREAM, _fhir({"subject": {"reference": "Patient/other"}}), [*RES0, "subject"]),
    ("/v1/predict", {"resourceType": "Bundle", "type": "batch", "entry": []}, ["body", "entry"]),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "loc"), MALFORMED)
def test_malformed_input_is_422_naming_the_field(client, path, body, loc):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = client.post(path, content=content, headers=AUTH)
    assert answer.status_code == 422, answer.text
    locs = [e["loc"] for e in answer.json()["detail"]]
    assert any(got[: len(loc)] == loc for got in locs), locs
    assert all("input" not in e for e in answer.json()["detail"])  # values are not echoed


def test_out_of_order_is_422_naming_the_observation(client):
    path = "/v1/patients/o1/observations"
    assert client.post(path, json=_obs(time=5.5), headers=AUTH).status_code == 200
    late = {"observations": [OK_EVENT | {"time": 6.0}, OK_EVENT | {"time": 2.0}]}
    answer = client.post(path, json=late, headers=AUTH)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "observations", 1, "time"]
    assert client.get("/v1/patients/o1", headers=AUTH).json()["n_observations"] == 1


BAD_AUTH = [
    {},
    {"Authorization": "Bearer wrong-token-0123456789"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": TOKEN},
]


@pytest.mark.parametrize("headers", BAD_AUTH)
def test_requests_without_a_valid_token_get_401(client, headers):
    for method, path in (
        ("get", "/v1/model"),
        ("get", "/metrics"),
        ("post", "/v1/predict"),
        ("post", STREAM),
        ("get", "/v1/patients/e1"),
        ("delete", "/v1/patients/e1"),
    ):
        answer = getattr(client, method)(path, headers=headers)
        assert answer.status_code == 401, (method, path)
        assert answer.headers["www-authenticate"] == "Bearer"


def test_too_large_body_is_413(client):
    big = {"observations": [OK_EVENT] * 900}  # ~40 kB per 900 events; limit is 64 kB
    answer = client.post(STREAM, content=json.dumps(big).encode() * 2, headers=AUTH)
    assert answer.status_code == 413


def test_logs_carry_no_patient_identifier_or_value(client, caplog):
    caplog.set_level(logging.DEBUG)
    secret_id, secret_value = "pt-SECRET7731", 123.4567
    body = {"observations": [OK_EVENT | {"value": secret_value}], "static": {"Age": 77.5}}
    client.post(f"/v1/patients/{secret_id}/observations", json=body, headers=AUTH)
    client.post(f"/v1/patients/{secret_id}/observations", json=_obs(value="oops"), headers=AUTH)
    client.get(f"/v1/patients/{secret_id}", headers=AUTH)
    client.delete(f"/v1/patients/{secret_id}", headers=AUTH)
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    text = "\n".join(r.getMessage() for r in server_side)
    assert "/v1/patients/{patient_id}" in text  # the access log is there, by template
    for needle in (secret_id, "SECRET", "123.4567", "77.5"):
        assert needle not in text


def test_tokens_must_be_configured_and_long(monkeypatch, tmp_path):
    monkeypatch.delenv("MEDSEQ_SERVE_TOKENS", raising=False)
    with pytest.raises(ValueError, match="no API token"):
        read_tokens()
    monkeypatch.setenv("MEDSEQ_SERVE_TOKENS", "changeme")
    with pytest.raises(ValueError, match="at least 16"):
        read_tokens()
    path = tmp_path / "tokens"
    path.write_text("# ops\n" + "a" * 20 + "\n")
    monkeypatch.setenv("MEDSEQ_SERVE_TOKENS", "b" * 20)
    assert read_tokens(path) == ("a" * 20, "b" * 20)
