"""Issue 16 item 3: ``medseq serve`` on a MIT-BIH beat bundle streams ECG per stream.

Real records of MIT-BIH sent in 1-s chunks, as JSON arrays and as FHIR R4
``Observation.valueSampledData``, give the beats and alerts of the monitoring detector fed
the same chunks directly (the uninterrupted run); a stream evicted from the cache, or
read back by a new service after a restart midway, continues with identical outputs;
retries are idempotent; bad input gets a 4xx naming the problem or a signal-quality state,
and never moves the stream's clock.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from serving_helpers import AUTH, TOKEN

from medseq.datasets import get_dataset
from medseq.monitoring.records import read_record
from medseq.paths import dataset_dir
from medseq.serving.api import create_app
from medseq.serving.settings import ServeSettings

FS = 360


def _record(name: str, seconds: int) -> np.ndarray:
    rec = read_record(dataset_dir("mitdb_full") / name, lead="MLII")
    assert rec.fs_hz == FS
    return rec.samples[: seconds * FS].astype(np.float64)


def _direct(bundle, x: np.ndarray) -> tuple[list, list]:
    """The uninterrupted run: the spec's detector fed the 1-s chunks directly."""
    make, _classifier = get_dataset("mitbih").signal_streaming.detector_factory(bundle)
    detector = make(float(FS))
    beats, alerts = [], []
    for i in range(0, len(x), FS):
        out = detector.push(x[i : i + FS], start=i)
        beats += [(b.sample, b.label, b.probabilities, b.quality) for b in out.beats]
        alerts += [(a.kind, a.episode, a.start_s, a.reported_s, a.reason) for a in out.alerts]
    return beats, alerts


def _from_acks(acks: list[dict]) -> tuple[list, list]:
    beats = [
        (b["sample"], b["label"], tuple(b["probabilities"].values()), b["quality"])
        for a in acks
        for b in a["beats"]
    ]
    alerts = [
        (e["kind"], e["episode"], e["start_s"], e["reported_s"], e["reason"])
        for a in acks
        for e in a["alerts"]
    ]
    return beats, alerts


def _settings(db: str = ":memory:", **kw) -> ServeSettings:
    return ServeSettings(tokens=(TOKEN,), state_db=db, **kw)


def _send(client, sid: str, x: np.ndarray, lo: int = 0, hi: int | None = None) -> list[dict]:
    acks = []
    for i in range(lo, len(x) if hi is None else hi, FS):
        body = {"start": i, "fs_hz": FS, "samples": x[i : i + FS].tolist()}
        r = client.post(f"/v1/streams/{sid}/samples", json=body, headers=AUTH)
        assert r.status_code == 200, r.text
        acks.append(r.json())
    return acks


T0 = datetime(2024, 3, 1, 8, 0, tzinfo=timezone.utc)


def _codes(x: np.ndarray) -> np.ndarray:
    """The record as a device's integers (MIT-BIH: 200 per mV)."""
    return np.round(x * 200).astype(int)


def _observation(x: np.ndarray, k: int, obs_id: str | None = None) -> dict:
    """Second ``k`` of ``x`` as a device's Observation: integers with a factor, the first
    sample's time, the period in milliseconds."""
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "urn:oid:2.16.840.1.113883.6.24", "code": "131330",
                             "display": "MDC_ECG_LEAD_II"}]},
        "effectiveDateTime": (T0 + timedelta(seconds=k)).isoformat(),
        "valueSampledData": {
            "origin": {"value": 0, "unit": "mV", "code": "mV"},
            "period": 1000 / FS,
            "factor": 0.005,
            "dimensions": 1,
            "data": " ".join(map(str, _codes(x[k * FS : (k + 1) * FS]))),
        },
    }  # fmt: skip
    if obs_id is not None:
        obs["id"] = obs_id
    return obs


@pytest.fixture(scope="module")
def record200() -> np.ndarray:
    return _record("200", 180)


@pytest.fixture(scope="module")
def client(trained_beat_bundle, test_client_cls):
    with test_client_cls(
        create_app(trained_beat_bundle, _settings()), raise_server_exceptions=False
    ) as c:
        yield c


def _open(client, sid: str, **body) -> dict:
    r = client.put(f"/v1/streams/{sid}", json={"fs_hz": FS, **body}, headers=AUTH)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.parametrize("name", ["200", "232"])
def test_json_chunks_give_the_detectors_beats_and_alerts(trained_beat_bundle, client, name):
    x = _record(name, 180)
    _open(client, f"json-{name}")
    beats, alerts = _from_acks(_send(client, f"json-{name}", x))
    want_beats, want_alerts = _direct(trained_beat_bundle, x)
    assert beats == want_beats and alerts == want_alerts
    assert len(beats) > 150 and len({b[1] for b in beats}) >= 2
    state = client.get(f"/v1/streams/json-{name}", headers=AUTH).json()
    assert state["n_beats"] == len(beats) and state["next_sample"] == len(x)
    assert sum(state["label_counts"].values()) == len(beats)


def test_fhir_observations_equal_the_json_form(trained_beat_bundle, client, record200):
    x = record200
    _open(client, "fhir-200", start_time=T0.isoformat())
    acks = []
    for k in range(len(x) // FS):
        obs = _observation(x, k, obs_id=f"ecg-{k}")
        r = client.post("/v1/streams/fhir-200/samples", json=obs, headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json()["start"] == k * FS  # placed on the clock by its time
        acks.append(r.json())
    beats, alerts = _from_acks(acks)
    # what the device sent: origin + factor * data
    want_beats, want_alerts = _direct(trained_beat_bundle, 0.0 + 0.005 * _codes(x))
    assert beats == want_beats
    assert alerts == want_alerts and alerts
    # the same Observation id again: the same acknowledgement, applied once
    again = client.post(
        "/v1/streams/fhir-200/samples",
        json=_observation(x, 5, obs_id="ecg-5"),
        headers=AUTH,
    )
    assert again.status_code == 200 and again.json() == acks[5]
    assert again.headers["idempotent-replayed"] == "true"
    # alerts as FHIR: Observations with the episode and the time on the wall clock
    bundle = client.get("/v1/streams/fhir-200/alerts?format=fhir", headers=AUTH).json()
    assert bundle["resourceType"] == "Bundle" and bundle["total"] == len(alerts)
    first = bundle["entry"][0]["resource"]
    assert first["resourceType"] == "Observation" and first["status"] == "preliminary"
    assert alerts[0][1] in first["code"]["text"]
    assert first["effectivePeriod"]["start"].startswith("2024-03-01T08:")


def test_a_retry_is_answered_the_same_and_other_content_is_a_conflict(client, record200):
    _open(client, "retry")
    x = record200[: 5 * FS]
    acks = _send(client, "retry", x)
    body = {"start": 2 * FS, "samples": x[2 * FS : 3 * FS].tolist()}
    again = client.post("/v1/streams/retry/samples", json=body, headers=AUTH)
    assert again.status_code == 200 and again.json() == acks[2]
    body["samples"][0] += 0.5
    other = client.post("/v1/streams/retry/samples", json=body, headers=AUTH)
    assert other.status_code == 409
    keyed = {"start": 5 * FS, "samples": record200[5 * FS : 6 * FS].tolist()}
    headers = {**AUTH, "Idempotency-Key": "chunk-6"}
    first = client.post("/v1/streams/retry/samples", json=keyed, headers=headers)
    second = client.post("/v1/streams/retry/samples", json=keyed, headers=headers)
    assert first.status_code == second.status_code == 200 and first.json() == second.json()
    keyed["start"] = 6 * FS
    assert client.post("/v1/streams/retry/samples", json=keyed, headers=headers).status_code == 409
    assert client.get("/v1/streams/retry", headers=AUTH).json()["next_sample"] == 6 * FS


def test_bad_input_gets_a_4xx_or_a_quality_state_and_never_moves_the_clock(client, record200):
    post = client.post
    # wrong sampling rate: on opening, and in a chunk
    r = client.put("/v1/streams/bad", json={"fs_hz": 250}, headers=AUTH)
    assert r.status_code == 422 and "360 Hz" in r.json()["detail"][0]["msg"]
    _open(client, "bad")
    x = record200
    r = post("/v1/streams/bad/samples", json={"start": 0, "fs_hz": 500, "samples": [0.1]},
             headers=AUTH)  # fmt: skip
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "fs_hz"]
    # unknown stream
    r = post("/v1/streams/nobody/samples", json={"start": 0, "samples": [0.1]}, headers=AUTH)
    assert r.status_code == 404 and "PUT /v1/streams" in r.json()["detail"]
    # no place on the clock
    r = post("/v1/streams/bad/samples", json={"samples": [0.1]}, headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "start"]
    acks = _send(client, "bad", x, 0, 10 * FS)
    # overlapping and out of order: 409, the clock stays
    for start in (9 * FS + 100, 3 * FS):  # (the same chunk again would be a retry)
        body = {"start": start, "samples": x[start + 1 : start + FS + 1].tolist()}
        r = post("/v1/streams/bad/samples", json=body, headers=AUTH)
        assert r.status_code == 409 and "overlap" in r.json()["detail"]
    assert client.get("/v1/streams/bad", headers=AUTH).json()["next_sample"] == 10 * FS
    # a NaN run (null samples): a quality state, not an error
    run = x[10 * FS : 13 * FS].tolist()
    run[100:700] = [None] * 600
    r = post("/v1/streams/bad/samples", json={"start": 10 * FS, "samples": run}, headers=AUTH)
    assert r.status_code == 200
    acks += [r.json(), *_send(client, "bad", x, 13 * FS, 20 * FS)]
    quality = [q for a in acks for q in a["quality"]]
    assert {"sample": 10 * FS, "state": "bad", "reason": "nan"} in quality
    # a 10-minute gap: the next chunk keeps its place, and the gap is a quality state
    later = 20 * FS + 600 * FS
    after = [
        post("/v1/streams/bad/samples", json={"start": later + k * FS,
             "samples": x[20 * FS + k * FS : 21 * FS + k * FS].tolist()}, headers=AUTH).json()
        for k in range(12)
    ]  # fmt: skip
    assert after[0]["start"] == later and after[-1]["next_sample"] == later + 12 * FS
    assert {"sample": later, "state": "bad", "reason": "gap"} in [
        q for a in after for q in a["quality"]
    ]
    beats = [b["sample"] for a in after for b in a["beats"]]
    assert beats and min(beats) >= later  # beats on the caller's clock, after the gap
    # a gap of hours is refused as a likely wrong index
    r = post("/v1/streams/bad/samples", json={"start": later + 5 * 3600 * FS,
             "samples": [0.1]}, headers=AUTH)  # fmt: skip
    assert r.status_code == 422 and "max_gap_s" in r.json()["detail"][0]["msg"]
    # wrong types and values name the field
    for body, loc in [
        ({"start": 10**6, "samples": [0.1, "x"]}, ["body", "samples", 1]),
        ({"start": -1, "samples": [0.1]}, ["body", "start"]),
        ({"start": 10**6, "samples": []}, ["body", "samples"]),
        ({"start": 10**6, "samples": [1e400]}, ["body", "samples", 0]),
        ({"start": 10**6, "samples": [0.1], "extra": 1}, ["body", "extra"]),
        ({"start_time": 1700000000, "samples": [0.1]}, ["body", "start_time"]),
    ]:
        r = post("/v1/streams/bad/samples", content=json.dumps(body), headers=AUTH)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == loc, (body, r.text)
    assert client.get("/v1/streams/bad", headers=AUTH).json()["next_sample"] == later + 12 * FS


def test_fhir_chunks_bad_fields_are_named(client, record200):
    _open(client, "fhir-bad", start_time=T0.isoformat())
    good = _observation(record200, 0)
    cases = [
        ({"period": 4.0}, ["body", "fs_hz"]),  # 250 Hz
        ({"dimensions": 2}, ["body", "valueSampledData", "dimensions"]),
        ({"data": "1 2 x"}, ["body", "valueSampledData", "data"]),
        ({"origin": {"value": 0, "code": "mmHg"}}, ["body", "valueSampledData", "origin", "code"]),
    ]
    for change, loc in cases:
        obs = json.loads(json.dumps(good))
        obs["valueSampledData"].update(change)
        r = client.post("/v1/streams/fhir-bad/samples", json=obs, headers=AUTH)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == loc, (change, r.text)
    obs = dict(good, effectiveDateTime="2024-03-01")
    r = client.post("/v1/streams/fhir-bad/samples", json=obs, headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "effectiveDateTime"]
    r = client.post("/v1/streams/fhir-bad/samples", json=dict(good, status="cancelled"),
                    headers=AUTH)  # fmt: skip
    assert r.status_code == 422
    # E (error) samples are missing samples: a quality state
    obs = json.loads(json.dumps(good))
    obs["valueSampledData"]["data"] = " ".join(["E"] * FS)
    r = client.post("/v1/streams/fhir-bad/samples", json=obs, headers=AUTH)
    assert r.status_code == 200 and r.json()["quality"][0]["reason"] == "nan"


def test_body_over_the_limit_is_413(trained_beat_bundle, test_client_cls, record200):
    app = create_app(trained_beat_bundle, _settings(max_body_bytes=64 * 1024))
    with test_client_cls(app, raise_server_exceptions=False) as c:
        _open(c, "big")
        body = {"start": 0, "samples": record200[: 60 * FS].tolist()}
        r = c.post("/v1/streams/big/samples", json=body, headers=AUTH)
        assert r.status_code == 413
        assert c.get("/v1/streams/big", headers=AUTH).json()["next_sample"] == 0


def test_evicted_and_restarted_streams_continue_identically(
    trained_beat_bundle, test_client_cls, record200, tmp_path
):
    """Three streams through a one-detector cache (every chunk reloads its stream from
    checkpoint + chunk log), and a new service on the same database halfway."""
    db = str(tmp_path / "state.sqlite")
    x = record200
    half = 95 * FS  # not a multiple of the checkpoint interval
    names = ["a", "b", "c"]
    acks: dict[str, list] = {n: [] for n in names}
    app = create_app(trained_beat_bundle, _settings(db, max_cached_streams=1))
    with test_client_cls(app, raise_server_exceptions=False) as c:
        for n in names:
            _open(c, n)
        for i in range(0, half, FS):
            for n in names:
                acks[n] += _send(c, n, x, i, i + FS)
    app = create_app(trained_beat_bundle, _settings(db, max_cached_streams=2))  # restart
    with test_client_cls(app, raise_server_exceptions=False) as c:
        for n in names:
            acks[n] += _send(c, n, x, half)
        assert c.get("/v1/streams/a", headers=AUTH).json()["next_sample"] == len(x)
        assert len(c.get("/v1/alerts", headers=AUTH).json()["alerts"]) == 3 * len(
            _direct(trained_beat_bundle, x)[1]
        )
        assert c.delete("/v1/streams/a", headers=AUTH).status_code == 200
        assert c.get("/v1/streams/a", headers=AUTH).status_code == 404
    want = _direct(trained_beat_bundle, x)
    for n in names:
        assert _from_acks(acks[n]) == want, n
    with sqlite3.connect(db) as con:  # the chunk log stays short: checkpoints prune it
        n_chunks = con.execute("SELECT COUNT(*) FROM signal_chunks").fetchone()[0]
        left = con.execute("SELECT COUNT(*) FROM signal_streams WHERE stream_id = 'a'")
        assert n_chunks <= 2 * 30 and left.fetchone()[0] == 0


def test_a_dataset_without_signal_streaming_refuses_with_its_reason(
    trained_gru_bundle, test_client_cls
):
    app = create_app(trained_gru_bundle, _settings())
    with test_client_cls(app, raise_server_exceptions=False) as c:
        r = c.put("/v1/streams/x", json={"fs_hz": 360}, headers=AUTH)
        assert r.status_code == 404 and "signal_streaming" in r.json()["detail"]
        assert "physionet2012" in r.json()["detail"]
        assert c.get("/v1/alerts/events", headers=AUTH).status_code == 404
        card = c.get("/v1/model", headers=AUTH).json()
        assert card["signal_streaming"]["supported"] is False


def test_closed_and_idle_streams_leave_no_trace_in_the_files(
    trained_beat_bundle, test_client_cls, record200, tmp_path
):
    """Issue 21's PHI hygiene on the signal tables: 0600 files; after DELETE (and after the
    retention sweep of an idle stream) the stream id is in none of the files."""
    import os
    import stat
    import time
    from pathlib import Path

    db = tmp_path / "phi.sqlite"
    marker = "phi-marker-7d3f"
    app = create_app(trained_beat_bundle, _settings(str(db)))
    with test_client_cls(app, raise_server_exceptions=False) as c:
        _open(c, marker)
        _open(c, "idle-marker-91c2")
        _send(c, marker, record200[: 40 * FS])  # past a checkpoint
        _send(c, "idle-marker-91c2", record200[: 3 * FS])
        assert c.delete(f"/v1/streams/{marker}", headers=AUTH).status_code == 200
        signals = c.app.state.signals
        assert signals.sweep(1.0, now=time.time() + 2 * 3600) == 1  # idle for 2 h
        assert c.get("/v1/streams/idle-marker-91c2", headers=AUTH).status_code == 404
        files = [Path(str(db) + s) for s in ("", "-wal", "-shm") if Path(str(db) + s).exists()]
        for f in files:
            assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f
            data = f.read_bytes()
            assert marker.encode() not in data and b"idle-marker-91c2" not in data, f


def test_a_beat_bundle_the_detector_cannot_run_starts_and_refuses_streams(
    test_client_cls, tmp_path
):
    """A MIT-BIH bundle with non-causal beat features (``mitbih-beats-shape``: QRS shape,
    second lead, record-relative values) serves predictions; its streams answer 409
    naming the feature, and the service starts."""
    from dataclasses import replace
    from pathlib import Path

    from medseq.experiment import load_config, run_experiment

    config = load_config(
        Path(__file__).resolve().parents[3] / "configs" / "mitbih-beats-shape.toml",
        ["train.epochs=1"],
    )
    config = replace(config, seeds=(0,), output_dir=str(tmp_path / "shape"))
    bundle = run_experiment(config, progress=False).bundle_dir
    with test_client_cls(create_app(bundle, _settings()), raise_server_exceptions=False) as c:
        r = c.put("/v1/streams/s", json={"fs_hz": FS}, headers=AUTH)
        assert r.status_code == 409 and "qrs_shape" in r.json()["detail"]
        card = c.get("/v1/model", headers=AUTH).json()["signal_streaming"]
        assert card["supported"] is False and "qrs_shape" in card["reason"]
        assert c.get("/healthz").status_code == 200
