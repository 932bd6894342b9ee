"""Idempotent streaming updates on real PhysioNet 2012 stays: a retried update (same
``Idempotency-Key``, ``update_id`` or FHIR Observation ids) is applied once and answered
the same, also after a restart; urine output, a volume summed by the reader, is the
variable a double count would corrupt."""

from __future__ import annotations

import copy

import pytest
from serving_helpers import AUTH, TOKEN, event_rows, fhir_bundle, stays

from medseq.datasets.physionet2012_serving import code_table
from medseq.serving.api import create_app
from medseq.serving.settings import ServeSettings


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return tmp_path_factory.mktemp("idem") / "state.sqlite"


@pytest.fixture(scope="module")
def client(trained_gru_bundle, test_client_cls, db):
    app = create_app(trained_gru_bundle, ServeSettings(tokens=(TOKEN,), state_db=str(db)))
    with test_client_cls(app) as c:
        yield c


@pytest.fixture(scope="module")
def stay(setb):
    """A real stay: its first 40 events, and a later urine output row of it."""
    _, events, static = next(s for s in stays(setb, 1100, 30) if (s[1].code == "Urine").sum() > 3)
    rows = event_rows(events)
    first = rows[:40]
    urine = next(r for r in rows[40:] if r["code"] == "Urine" and r["time"] > first[-1]["time"])
    return first, urine, static


def _post(client, pid, body, key=None):
    headers = AUTH | ({"Idempotency-Key": key} if key else {})
    return client.post(f"/v1/patients/{pid}/observations", json=body, headers=headers)


def _start(client, pid, stay):
    first, _, static = stay
    assert _post(client, pid, {"observations": first, "static": static}).status_code == 200


def test_a_retried_key_is_applied_once_and_answered_the_same(client, stay):
    _, urine, _ = stay
    _start(client, "k1", stay)
    _start(client, "twin1", stay)
    once = _post(client, "twin1", {"observations": [urine]}).json()
    first = _post(client, "k1", {"observations": [urine]}, key="0b6f-retry-1")
    retry = _post(client, "k1", {"observations": [urine]}, key="0b6f-retry-1")
    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json()
    state = client.get("/v1/patients/k1", headers=AUTH).json()
    assert state["n_observations"] == once["n_observations"] == 41
    assert state["risk"] == once["risk"]
    again = _post(client, "k1", {"observations": [urine]}, key="0b6f-retry-2")  # a new key
    assert again.json()["n_observations"] == 42  # is a new update


def test_update_id_in_the_body_works_as_the_header(client, stay):
    _, urine, _ = stay
    _start(client, "k2", stay)
    body = {"observations": [urine], "update_id": "u-77"}
    first, retry = _post(client, "k2", body).json(), _post(client, "k2", body).json()
    assert first == retry and retry["n_observations"] == 41
    clash = _post(client, "k2", body, key="u-78")
    assert clash.status_code == 422 and clash.json()["detail"][0]["loc"] == ["body", "update_id"]


def test_a_key_reused_for_other_content_is_409_and_changes_nothing(client, stay):
    _, urine, _ = stay
    _start(client, "k3", stay)
    assert _post(client, "k3", {"observations": [urine]}, key="same").status_code == 200
    other = dict(urine, value=urine["value"] + 100.0)
    answer = _post(client, "k3", {"observations": [other]}, key="same")
    assert answer.status_code == 409 and "different update" in answer.json()["detail"]
    assert client.get("/v1/patients/k3", headers=AUTH).json()["n_observations"] == 41


@pytest.mark.parametrize("key", ["", "has space", "x" * 129, "ünï"])
def test_a_malformed_key_is_422_naming_the_header(client, stay, key):
    answer = client.post(
        "/v1/patients/k4/observations",
        json={"observations": [stay[1]]},
        headers=AUTH | {"Idempotency-Key": key.encode("utf-8")},
    )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]


def _with_ids(bundle: dict, prefix: str) -> dict:
    out = copy.deepcopy(bundle)
    for k, entry in enumerate(out["entry"]):
        if entry["resource"]["resourceType"] == "Observation":
            entry["resource"]["id"] = f"{prefix}-{k}"
    return out


def test_fhir_observation_ids_are_applied_once(client, setb):
    _, events, static = next(s for s in stays(setb, 1100, 30) if (s[1].code == "Urine").sum() > 3)
    table = code_table()
    urine_rows = events[events.code == "Urine"]
    head = fhir_bundle([("f1", events.iloc[:30], static)], table)
    first = _with_ids(head, "obs")
    one = _post(client, "f1", first)
    assert one.status_code == 200
    assert _post(client, "f1", first).json() == one.json()  # a retried Bundle
    n_before = one.json()["n_observations"]
    later = urine_rows[urine_rows.time > events.iloc[29].time].iloc[:2]
    extra = fhir_bundle([("f1", later, {})], table, with_encounter=False)
    extra = _with_ids(extra, "late")
    # the retry of the first Bundle's Observations rides along with the new ones
    mixed = copy.deepcopy(extra)
    mixed["entry"] += [e for e in first["entry"] if e["resource"]["resourceType"] == "Observation"]
    answer = _post(client, "f1", mixed).json()
    assert answer["n_applied"] == len(later)
    assert answer["n_observations"] == n_before + len(later)
    duplicates = [s for s in answer["skipped"] if s["reason"] == "duplicate_id"]
    assert len(duplicates) == n_before


def test_seen_keys_and_ids_survive_a_restart(trained_gru_bundle, test_client_cls, db, client, stay):
    _, urine, _ = stay
    _start(client, "r1", stay)
    first = _post(client, "r1", {"observations": [urine]}, key="restart-key").json()
    app = create_app(trained_gru_bundle, ServeSettings(tokens=(TOKEN,), state_db=str(db)))
    with test_client_cls(app) as fresh:  # a second process on the same state file
        retry = _post(fresh, "r1", {"observations": [urine]}, key="restart-key")
        assert retry.json() == first
        assert fresh.get("/v1/patients/r1", headers=AUTH).json()["n_observations"] == 41
