"""Sepsis risk streamed one ICU hour at a time over HTTP, on real PhysioNet 2019 patients.

Held-out patients of hospital systems A and B are replayed hour by hour through
``POST /v1/patients/{id}/observations`` of a service on a trained (small) bundle; every
hour's answered risk equals the offline per-hour prediction (``bundle.predict``) to 1e-6,
the alerts follow the k-above / m-below hysteresis over those same risks, and a restart
of the service in the middle of the stays (SQLite state) changes nothing.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import test_serving_per_step_datasets as per_step

from medseq.bundle import load_bundle
from medseq.serving.api import create_app
from medseq.serving.settings import ServeSettings

sepsis_root, sepsis = per_step.sepsis_root, per_step.sepsis  # module fixtures (real patients)
AUTH, TOL, TOKEN = per_step.AUTH, per_step.TOL, per_step.every.TOKEN
ONSET, CLEAR = 2, 3


def _client(bundle_dir, db, **alert):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    settings = ServeSettings(
        tokens=(TOKEN,), state_db=str(db), alert_onset_steps=ONSET, alert_clear_steps=CLEAR,
        **alert,
    )  # fmt: skip
    client = TestClient(create_app(bundle_dir, settings))
    client.__enter__()
    return client


def _send(client, patient_id: str, hours: list[dict]) -> dict:
    answer = client.post(
        f"/v1/patients/{patient_id}/observations", json={"hours": hours}, headers=AUTH
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def _expected_alerts(risks: np.ndarray, on: float, hysteresis: float) -> list[bool]:
    """The hysteresis written out plainly: on after ONSET hours >= on, off after CLEAR
    hours < on - hysteresis."""
    alert, above, below, out = False, 0, 0, []
    for r in risks:
        above = above + 1 if r >= on else 0
        below = below + 1 if r < on - hysteresis else 0
        if not alert and above >= ONSET:
            alert, below = True, 0
        elif alert and below >= CLEAR:
            alert, above = False, 0
        out.append(alert)
    return out


@pytest.fixture(scope="module")
def held_out(sepsis, sepsis_root):
    """Six patients not trained on (3 of A, 3 of B), their hours and offline risks."""
    data, bundle_dir = sepsis
    ids = data.static.index.to_numpy()
    chosen = np.r_[ids[35:38], ids[75:78]]
    stays = [per_step._stay(sepsis_root, int(i)) for i in chosen]
    offline = load_bundle(bundle_dir).predict(data, chosen)[..., 1]  # (N, 72)
    return stays, offline


def test_hour_by_hour_replay_equals_offline_and_survives_restart(sepsis, held_out, tmp_path):
    _, bundle_dir = sepsis
    stays, offline = held_out
    db = tmp_path / "state.sqlite"
    client = _client(bundle_dir, db)
    risks: dict[str, list[float]] = {s["patient_id"]: [] for s in stays}
    alerts: dict[str, list[bool]] = {s["patient_id"]: [] for s in stays}
    restart_at = 20
    for hour in range(72):
        if hour == restart_at:  # the service goes down; the states are in SQLite
            client.__exit__(None, None, None)
            client = _client(bundle_dir, db)
        for stay in stays:
            if hour < len(stay["hours"]):
                out = _send(client, stay["patient_id"], [stay["hours"][hour]])
                assert out["hours_covered"] == hour + 1
                risks[stay["patient_id"]].append(out["risk"])
                alerts[stay["patient_id"]].append(out["alert"])
    card = client.get("/v1/model", headers=AUTH).json()["streaming"]
    assert card["supported"] and card["alert"]["onset_steps"] == ONSET
    on, gap = card["alert"]["threshold"], card["alert"]["hysteresis"]
    assert on == 0.3  # the bundle's threshold
    for k, stay in enumerate(stays):
        got = np.array(risks[stay["patient_id"]])
        n = min(len(stay["hours"]), 72)
        assert len(got) == n > restart_at
        np.testing.assert_allclose(got, offline[k, :n], atol=TOL, rtol=0)
        assert alerts[stay["patient_id"]] == _expected_alerts(offline[k, :n], on, gap)
    client.__exit__(None, None, None)


def test_packed_cached_states_answer_as_live_ones_bit_for_bit(sepsis, held_out, tmp_path):
    """The sepsis service caches its hourly states as the ICU one does: with one live state
    (``warm_patients=1``) every other patient's hour rehydrates a packed state, and every
    answer equals that of a service holding all states live, to the bit."""
    _, bundle_dir = sepsis
    stays, _ = held_out
    packed = _client(bundle_dir, tmp_path / "packed.sqlite", warm_patients=1)
    live = _client(bundle_dir, tmp_path / "live.sqlite", warm_patients=10_000)
    n = 0
    for hour in range(72):
        for stay in stays:
            if hour < len(stay["hours"]):
                a = _send(packed, stay["patient_id"], [stay["hours"][hour]])
                b = _send(live, stay["patient_id"], [stay["hours"][hour]])
                assert a == b and a["risk"].hex() == b["risk"].hex(), (stay["patient_id"], hour)
                n += 1
    assert n > 100
    cache = packed.app.state.stream._cache
    assert cache.n_packed == len(stays) - 1 and live.app.state.stream._cache.n_packed == 0
    packed.__exit__(None, None, None)
    live.__exit__(None, None, None)


def test_alerts_rise_and_clear_with_hysteresis_on_real_risks(sepsis, held_out, tmp_path):
    """The small bundle's risks all lie above its 0.3 threshold, so the alert above never
    clears; here the threshold is set at one stay's median risk so that it does."""
    _, bundle_dir = sepsis
    stays, offline = held_out
    k = int(np.argmax([np.ptp(r[: len(s["hours"])]) for s, r in zip(stays, offline, strict=True)]))
    n = min(len(stays[k]["hours"]), 72)
    ranked = np.sort(offline[k, :n])
    on = float(ranked[n // 2 - 1] + ranked[n // 2]) / 2  # between two risks, not on one
    assert np.abs(offline[k, :n] - on).min() > 10 * TOL
    client = _client(bundle_dir, tmp_path / "s.sqlite", alert_threshold=on, alert_hysteresis=0.0)
    got = [_send(client, "p", [h])["alert"] for h in stays[k]["hours"][:n]]
    expected = _expected_alerts(offline[k, :n], on, 0.0)
    assert got == expected
    assert sum(a != b for a, b in itertools.pairwise(expected)) >= 2  # raised and cleared
    client.__exit__(None, None, None)


def test_several_hours_per_update_and_hours_past_the_horizon(sepsis, held_out, tmp_path):
    _, bundle_dir = sepsis
    stays, offline = held_out
    client = _client(bundle_dir, tmp_path / "state.sqlite")
    stay = max(stays, key=lambda s: len(s["hours"]))
    k = stays.index(stay)
    pid, hours = stay["patient_id"], stay["hours"]
    from medseq.serving.store import encode_state

    sizes = set()  # O(1) per hour: what is carried does not grow with the stay
    for start in range(0, min(len(hours), 72), 7):
        chunk = hours[start : min(start + 7, 72)]
        out = _send(client, pid, chunk)
        sizes.add(len(encode_state(client.app.state.stream.get(pid).state)[1]))
        last = start + len(chunk) - 1
        assert out["hours_covered"] == last + 1
        assert out["risk"] == pytest.approx(offline[k, last], abs=TOL)
    assert len(sizes) == 1
    if len(hours) > 72:  # monitoring goes on after the training horizon
        out = _send(client, pid, hours[72:])
        assert out["hours_covered"] == len(hours) and 0.0 <= out["risk"] <= 1.0
    final = client.delete(f"/v1/patients/{pid}", headers=AUTH)
    assert final.status_code == 200 and final.json()["hours_covered"] == len(hours)
    assert client.get(f"/v1/patients/{pid}", headers=AUTH).status_code == 404
    client.__exit__(None, None, None)


def test_bad_hours_are_refused_and_change_nothing(sepsis, held_out, tmp_path):
    _, bundle_dir = sepsis
    stays, offline = held_out
    client = _client(bundle_dir, tmp_path / "state.sqlite")
    pid, hours = stays[0]["patient_id"], stays[0]["hours"]
    url = f"/v1/patients/{pid}/observations"
    _send(client, pid, hours[:3])
    before = client.get(f"/v1/patients/{pid}", headers=AUTH).json()
    for body, where in [
        ({"hours": [hours[4]]}, "ICULOS"),  # a gap: hour 4 after hour 2
        ({"hours": [hours[2]]}, "ICULOS"),  # hour 2 again
        ({"hours": [hours[3], hours[5]]}, "ICULOS"),  # a gap inside the body
        ({"hours": [{**hours[3], "Lactate": "high"}]}, "Lactate"),
        ({"hours": [{**hours[3], "SepsisLabel": 1}]}, "SepsisLabel"),  # the label is not input
        ({"hours": []}, "hours"),
    ]:
        answer = client.post(url, json=body, headers=AUTH)
        assert answer.status_code == 422, (body, answer.text)
        assert where in str(answer.json()["detail"]), answer.text
    gap = client.post(url, json={"hours": [hours[4]]}, headers=AUTH)
    assert gap.json()["detail"][0]["loc"] == ["body", "hours", 0, "ICULOS"]  # the row at fault
    assert client.get(f"/v1/patients/{pid}", headers=AUTH).json() == before
    out = _send(client, pid, [hours[3]])  # the right next hour still goes on exactly
    assert out["risk"] == pytest.approx(offline[0, 3], abs=TOL)
    client.__exit__(None, None, None)


def test_spec_offers_streaming_and_implausible_values_are_listed(sepsis, held_out, tmp_path):
    from medseq.datasets import get_dataset

    spec = get_dataset("physionet2019")
    assert spec.require("streaming", "streaming") is not None
    assert "streaming" not in spec.unsupported
    _, bundle_dir = sepsis
    stays, offline = held_out
    client = _client(bundle_dir, tmp_path / "state.sqlite")
    pid, hours = stays[1]["patient_id"], stays[1]["hours"]
    first = {**hours[0], "FiO2": 40.0}  # a percentage where the Challenge stores a fraction
    out = _send(client, pid, [first])
    assert {"index": 0, "code": "FiO2", "reason": "implausible_value"} in out["skipped"]
    assert out["risk"] == pytest.approx(offline[1, 0], abs=TOL)  # left out, as the reader does
    later = {**hours[1], "Age": hours[0].get("Age", 50.0) + 7}  # descriptors: the first hour's
    out = _send(client, pid, [later])
    assert {"index": 0, "code": "Age", "reason": "descriptor_differs_from_first_hour"} in out[
        "skipped"
    ]
    assert out["risk"] == pytest.approx(offline[1, 1], abs=TOL)
    client.__exit__(None, None, None)
