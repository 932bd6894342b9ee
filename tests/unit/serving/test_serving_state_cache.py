"""Bounded state cache, per-patient locks and the retention sweep, on real PhysioNet 2012 stays."""

from __future__ import annotations

import time

import pytest
from serving_helpers import (
    AUTH,
    TOKEN,
    event_rows,
    hourly_updates,
    round_robin,
    run_concurrently,
    stays,
)

from medseq.serving.api import create_app
from medseq.serving.engine import AlertPolicy, Observation
from medseq.serving.inputs import History
from medseq.serving.service import StreamService
from medseq.serving.settings import ServeSettings
from medseq.serving.store import StateStore


def _service(bundle, path, max_cached: int) -> StreamService:
    store = StateStore(path)
    return StreamService(bundle, "v1", store, AlertPolicy(0.3), max_cached_patients=max_cached)


def test_cache_of_two_gives_the_risks_of_an_unbounded_one(gru_bundle, setb, tmp_path):
    plans = hourly_updates(setb, 900, 5)
    small = _service(gru_bundle, tmp_path / "small.sqlite", max_cached=2)
    large = _service(gru_bundle, tmp_path / "large.sqlite", max_cached=10_000)
    for pid, history in round_robin(plans):
        a, b = small.update(pid, history), large.update(pid, history)
        assert a.risk == b.risk and a.n_observations == b.n_observations, pid
        assert small.n_cached <= 2
    assert large.n_cached == 5 and small._cache.evictions > 0
    for pid in plans:  # reading evicted stays reloads them, still equal
        assert small.get(pid).state.risk == large.get(pid).state.risk


def test_concurrent_updates_equal_sequential_ones(gru_bundle, setb, tmp_path):
    plans = hourly_updates(setb, 920, 6)
    sequential = _service(gru_bundle, tmp_path / "seq.sqlite", max_cached=10_000)
    for pid, history in round_robin(plans):
        sequential.update(pid, history)
    concurrent = _service(gru_bundle, tmp_path / "par.sqlite", max_cached=2)

    def stream(pid: str) -> None:
        for history in plans[pid]:
            concurrent.update(pid, history)

    errors = run_concurrently(stream, plans)
    assert not errors, errors
    for pid in plans:
        assert concurrent.get(pid).state.risk == sequential.get(pid).state.risk
    assert len(concurrent._locks) == 0  # no lock outlives its requests


def test_concurrent_updates_of_one_patient_lose_nothing(gru_bundle, tmp_path):
    service = _service(gru_bundle, tmp_path / "one.sqlite", max_cached=1)
    n_threads, per_thread = 8, 5

    def post(k: int) -> None:
        for j in range(per_thread):
            obs = [Observation("Urine", 2.0, 10.0 + k + j / 10)]
            service.update("same", History("same", obs, [0]))
            service.update(f"other{k}", History(f"other{k}", obs, [0]))  # evicts "same"

    errors = run_concurrently(post, range(n_threads))
    assert not errors, errors
    assert service.get("same").state.n_observations == n_threads * per_thread
    assert len(service.store.observations("same")) == n_threads * per_thread


def test_retention_sweep_deletes_only_idle_stays(gru_bundle, tmp_path):
    service = _service(gru_bundle, tmp_path / "ret.sqlite", max_cached=10)
    for pid in ("old", "new"):
        service.update(pid, History(pid, [Observation("HR", 1.0, 80.0)], [0]))
    later = time.time() + 3 * 3600
    service.update("new", History("new", [Observation("HR", 2.0, 82.0)], [0]))
    assert service.sweep(retention_hours=48, now=later) == 0
    # pretend "old" was last updated 3 h before "new": only it is older than 2.5 h
    service.store._db.execute("UPDATE patients SET updated_at = updated_at - 10800 "
                              "WHERE patient_id = 'old'")  # fmt: skip
    assert service.sweep(retention_hours=2.5, now=time.time() + 60) == 1
    assert service.get("old") is None and service.store.observations("old") == []
    assert service.get("new") is not None


def test_service_sweeps_idle_patients_periodically(
    trained_gru_bundle, setb, test_client_cls, tmp_path
):
    settings = ServeSettings(
        tokens=(TOKEN,), state_db=str(tmp_path / "sweep.sqlite"), max_cached_patients=3,
        retention_hours=0.5 / 3600, retention_sweep_seconds=0.1,
    )  # fmt: skip
    _, events, _ = next(stays(setb, 950, 1))
    with test_client_cls(create_app(trained_gru_bundle, settings)) as client:
        body = {"observations": event_rows(events.iloc[:5])}
        assert client.post("/v1/patients/idle1/observations", json=body, headers=AUTH).is_success
        assert client.get("/v1/patients/idle1", headers=AUTH).status_code == 200
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if client.get("/v1/patients/idle1", headers=AUTH).status_code == 404:
                break
            time.sleep(0.2)
        assert client.get("/v1/patients/idle1", headers=AUTH).status_code == 404
        card = client.get("/v1/model", headers=AUTH).json()
        assert card["streaming"]["max_cached_patients"] == 3


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_cached_patients", 0), ("retention_hours", 0.0), ("retention_sweep_seconds", -1.0)],
)
def test_settings_refuse_bad_cache_and_retention(field, value):
    with pytest.raises(ValueError, match=field):
        ServeSettings(tokens=(TOKEN,), **{field: value})
