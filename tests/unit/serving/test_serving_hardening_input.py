"""Issue 21, items 1 and 6: every bad body gets a 4xx naming the field, never a 500.

Deep JSON is refused before parsing, FHIR Bundles are checked within bounds (type, entry
count, resource types, dates as strings), error lists are capped, censored values are left
out and reported, and the FHIR form of a streaming update has the event-table form's caps.
"""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from serving_helpers import AUTH, TOKEN

from medseq.serving.api import create_app
from medseq.serving.jsonbody import MAX_JSON_DEPTH, json_depth
from medseq.serving.requests import MAX_ERRORS
from medseq.serving.schemas import MAX_UPDATE
from medseq.serving.settings import ServeSettings

STREAM = "/v1/patients/h1/observations"
PREDICT = "/v1/predict"
RES0 = ["body", "entry", 0, "resource"]
UCUM = "http://unitsofmeasure.org"


@pytest.fixture(scope="module")
def client(trained_gru_bundle, test_client_cls):
    with test_client_cls(create_app(trained_gru_bundle, ServeSettings(tokens=(TOKEN,)))) as c:
        yield c


def _obs(when: str = "2024-01-01T10:00:00+00:00", value: float = 80, **fields) -> dict:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},  # heart rate
        "subject": {"reference": "Patient/h1"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "system": UCUM, "code": "/min"},
    } | fields


def _bundle(*resources: dict, kind: str | None = "collection") -> dict:
    out = {"resourceType": "Bundle", "entry": [{"resource": r} for r in resources]}
    return out | ({"type": kind} if kind is not None else {})


def _post(client, path: str, body) -> tuple[int, object]:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = client.post(path, content=content, headers=AUTH)
    return answer.status_code, answer.json()


# -- JSON depth ----------------------------------------------------------------------------


def _nested(depth: int, leaf: object = 1) -> object:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


@settings(max_examples=200, deadline=None)
@given(depth=st.integers(0, 80), leaf=st.text(alphabet='[]{}"\\ab', max_size=12))
def test_json_depth_is_the_nesting_whatever_the_strings_hold(depth, leaf):
    assert json_depth(json.dumps(_nested(depth, leaf)).encode()) == depth


@pytest.mark.parametrize("path", [PREDICT, STREAM])
def test_json_nested_a_thousand_levels_is_422_not_500(client, path):
    status, answer = _post(client, path, b"[" * 1000 + b"]" * 1000)
    assert status == 422
    assert answer["detail"][0]["type"] == "json_too_deep"
    status, _ = _post(client, path, json.dumps(_nested(MAX_JSON_DEPTH)).encode())
    assert status == 422  # within the depth limit: refused by the body's own schema


def _extension(levels: int) -> dict:
    ext: dict = {"url": "http://example.org/x", "valueString": "a"}
    for _ in range(levels):
        ext = {"url": "http://example.org/x", "extension": [ext]}
    return ext


def test_fhir_extension_nesting_is_bounded(client):
    status, answer = _post(client, PREDICT, _bundle(_obs(extension=[_extension(300)])))
    assert status == 422 and answer["detail"][0]["type"] == "json_too_deep"
    status, answer = _post(client, PREDICT, _bundle(_obs(extension=[_extension(25)])))
    assert status == 200, answer  # legal nesting still validates and is scored


# -- FHIR bounds -------------------------------------------------------------------------------


def test_unknown_resource_type_is_422_and_not_logged(client, caplog):
    caplog.set_level(logging.DEBUG)
    status, answer = _post(client, PREDICT, _bundle({"resourceType": "SecretMarker77"}, _obs()))
    assert status == 422
    assert answer["detail"][0]["loc"] == [*RES0, "resourceType"]
    assert "SecretMarker77" not in json.dumps(answer)
    assert all("SecretMarker77" not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("kind", ["history", "transaction-response", "nonsense", None])
def test_bundle_type_outside_the_read_ones_is_422(client, kind):
    status, answer = _post(client, PREDICT, _bundle(_obs(), kind=kind))
    assert status == 422
    assert answer["detail"][0]["loc"] == ["body", "type"]


@pytest.mark.parametrize(
    ("resource", "loc"),
    [
        (_obs(when=1704103200), [*RES0, "effectiveDateTime"]),  # type: ignore[arg-type]
        (_obs(effectivePeriod={"start": 1704103200}), [*RES0, "effectivePeriod", "start"]),
        ({"resourceType": "Patient", "id": "h1", "birthDate": 19700101}, [*RES0, "birthDate"]),
    ],
)
def test_numeric_dates_are_422_not_epoch_seconds(client, resource, loc):
    status, answer = _post(client, PREDICT, _bundle(resource, _obs()))
    assert status == 422
    assert answer["detail"][0]["loc"] == loc


def test_censored_value_is_left_out_and_reported(client):
    plain = _bundle(_obs(), _obs(when="2024-01-01T11:00:00+00:00", value=120))
    censored = json.loads(json.dumps(plain))
    censored["entry"][1]["resource"]["valueQuantity"]["comparator"] = "<"
    alone = _bundle(_obs())
    answers = [_post(client, PREDICT, body) for body in (plain, censored, alone)]
    assert [s for s, _ in answers] == [200, 200, 200]
    (p,), (c,), (a,) = (body["predictions"] for _, body in answers)
    assert c["skipped"] == [{"index": 1, "code": "8867-4", "reason": "censored"}]
    assert c["probabilities"] == a["probabilities"]  # as if the value were not sent
    assert c["probabilities"] != p["probabilities"]  # (it would have counted if exact)


def test_error_lists_are_capped(client):
    rows = [{"time": 1.0, "code": "HR", "value": "x"}] * MAX_UPDATE
    status, answer = _post(client, STREAM, {"observations": rows})
    assert status == 422
    detail = answer["detail"]
    assert len(detail) == MAX_ERRORS + 1
    assert detail[-1]["type"] == "too_many_errors"
    assert detail[-1]["msg"] == f"and {MAX_UPDATE - MAX_ERRORS} more"


def test_error_count_spans_every_patient_and_entry(client):
    bad = [{"time": 1.0, "code": "HR", "value": "x"}] * 40
    patients = [{"patient_id": f"p{k}", "events": bad} for k in range(3)]
    status, answer = _post(client, PREDICT, {"patients": patients})
    assert status == 422
    assert answer["detail"][-1]["msg"] == f"and {3 * 40 - MAX_ERRORS} more"
    assert answer["detail"][40]["loc"][:3] == ["body", "patients", 1]  # the 2nd patient's
    entries = [_obs(valueQuantity={"value": "x"})] * 70
    status, answer = _post(client, PREDICT, _bundle(*entries))
    assert status == 422
    assert answer["detail"][-1]["msg"] == f"and {70 - MAX_ERRORS} more"


# -- one set of caps for both streaming forms ---------------------------------------------------


def test_streaming_fhir_form_has_the_event_forms_count_cap(client):
    events = {"observations": [{"time": 1.0, "code": "HR", "value": 80.0}] * (MAX_UPDATE + 1)}
    status, answer = _post(client, STREAM, events)
    assert status == 422 and answer["detail"][0]["loc"] == ["body", "observations"]
    fhir = _bundle(*[_obs()] * (MAX_UPDATE + 1))
    status, answer = _post(client, STREAM, fhir)
    assert status == 422 and answer["detail"][0]["loc"] == ["body", "entry"]
    assert client.get("/v1/patients/h1", headers=AUTH).status_code == 404  # nothing applied


def test_streaming_fhir_form_has_the_event_forms_time_cap(client):
    path = "/v1/patients/h2/observations"
    first = _obs(subject={"reference": "Patient/h2"}, when="2020-01-01T00:00:00+00:00")
    assert _post(client, path, _bundle(first))[0] == 200
    late = _obs(subject={"reference": "Patient/h2"}, when="2022-06-01T00:00:00+00:00")
    status, answer = _post(client, path, _bundle(late))
    assert status == 422
    assert answer["detail"][0]["loc"] == [*RES0, "effectiveDateTime"]
    status, answer = _post(
        client, path, {"observations": [{"time": 2e4, "code": "HR", "value": 1}]}
    )
    assert status == 422 and answer["detail"][0]["loc"][-1] == "time"  # the same cap
    assert client.get("/v1/patients/h2", headers=AUTH).json()["n_observations"] == 1
