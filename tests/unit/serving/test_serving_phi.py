"""PHI hygiene of the state database and the logs, on real PhysioNet 2012 stays: files
0600, a deleted patient's id in none of the files (also after a restart and after
``kill -9``), no request content in any log line at any level."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import textwrap

from serving_helpers import AUTH, TOKEN, event_rows, fhir_bundle, stays

from medseq.datasets.physionet2012_serving import code_table
from medseq.serving.api import create_app
from medseq.serving.settings import ServeSettings
from medseq.serving.store import StateStore

MARK = b"GONE4711"
FILES = ("", "-wal", "-shm")


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _bytes_with(db, needle: bytes) -> list[str]:
    """The state files (database, -wal, -shm) that hold ``needle``."""
    hits = []
    for suffix in FILES:
        path = f"{db}{suffix}"
        if os.path.exists(path):
            with open(path, "rb") as f:
                if needle in f.read():
                    hits.append(suffix or "db")
    return hits


def _post_stays(client, setb, start: int, n: int, prefix: str) -> None:
    for sid, events, static in stays(setb, start, n):
        rows = event_rows(events)
        for k in range(0, len(rows), 40):  # several transactions per stay
            body = {"observations": rows[k : k + 40]} | ({"static": static} if k == 0 else {})
            answer = client.post(
                f"/v1/patients/{prefix}{sid}/observations", json=body, headers=AUTH
            )
            assert answer.status_code == 200, answer.text


def test_state_files_are_private_and_an_old_open_file_is_tightened(tmp_path):
    db = tmp_path / "state.sqlite"
    old_umask = os.umask(0o022)
    try:
        store = StateStore(db)
        store._db.execute("INSERT INTO meta VALUES ('k', 'v')")  # a write: -wal and -shm exist
        assert all(os.path.exists(f"{db}{s}") for s in FILES)
        assert [_mode(f"{db}{s}") for s in FILES] == [0o600] * 3
        store.close()
        os.chmod(db, 0o644)
        StateStore(db).close()
        assert _mode(db) == 0o600
    finally:
        os.umask(old_umask)


def test_a_deleted_patient_is_in_no_file_also_after_restart(
    trained_gru_bundle, setb, test_client_cls, tmp_path
):
    db = tmp_path / "state.sqlite"
    settings = ServeSettings(tokens=(TOKEN,), state_db=str(db))
    target = f"pt-{MARK.decode()}"
    with test_client_cls(create_app(trained_gru_bundle, settings)) as client:
        _post_stays(client, setb, 1000, 6, "keep-")
        table = code_table()
        _, events, static = next(stays(setb, 1010, 1))
        fhir = fhir_bundle([(target, events.iloc[:60], static)], table)
        assert client.post(
            f"/v1/patients/{target}/observations", json=fhir, headers=AUTH
        ).is_success
        _post_stays(client, setb, 1020, 3, "late-")  # the id's pages move on in the WAL
        assert _bytes_with(db, MARK)  # the test can see it before the delete
        assert client.delete(f"/v1/patients/{target}", headers=AUTH).status_code == 200
        assert _bytes_with(db, MARK) == []
        _post_stays(client, setb, 1030, 2, "after-")
        assert _bytes_with(db, MARK) == []
    assert _bytes_with(db, MARK) == []  # after shutdown
    with test_client_cls(create_app(trained_gru_bundle, settings)) as client:  # restart
        assert client.get(f"/v1/patients/{target}", headers=AUTH).status_code == 404
        kept = client.get("/v1/patients/late-" + str(next(stays(setb, 1020, 1))[0]), headers=AUTH)
        assert kept.status_code == 200
        assert _bytes_with(db, MARK) == []
    assert [_mode(f"{db}{s}") for s in FILES if os.path.exists(f"{db}{s}")] == [0o600] * len(
        [s for s in FILES if os.path.exists(f"{db}{s}")]
    )


_CRASH = textwrap.dedent(
    """
    import os, signal, sys
    from medseq.bundle import load_bundle
    from medseq.serving.engine import Observation, StreamingEngine
    from medseq.serving.store import StateStore

    bundle_dir, db, mode = sys.argv[1:4]
    engine = StreamingEngine(load_bundle(bundle_dir))
    store = StateStore(db)
    for pid in ("pt-GONE4711", "other-1", "other-2"):
        state = engine.new_state()
        obs = [Observation("HR", 1.0, 88.0), Observation("Urine", 1.5, 40.0)]
        engine.update(state, obs)
        store.save(pid, "v1", None, state, obs)
    if mode == "delete-then-crash":
        store.delete("pt-GONE4711")
        state = engine.new_state()
        store.save("other-3", "v1", None, state, [])
    os.kill(os.getpid(), signal.SIGKILL)  # no close: the WAL stays as it is
    """
)


def _crash(bundle_dir, db, mode: str) -> None:
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-c", _CRASH, str(bundle_dir), str(db), mode],
        env=env, capture_output=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]


def test_kill_9_then_restart_leaves_a_deleted_id_in_no_file(trained_gru_bundle, tmp_path):
    db = tmp_path / "crash.sqlite"
    _crash(trained_gru_bundle, db, "delete-then-crash")
    store = StateStore(db)  # the restart
    assert store.load("pt-GONE4711") is None and store.load("other-3") is not None
    assert _bytes_with(db, MARK) == []
    store.close()

    db2 = tmp_path / "crash2.sqlite"
    _crash(trained_gru_bundle, db2, "crash-before-delete")
    store = StateStore(db2)
    assert store.load("pt-GONE4711") is not None and _bytes_with(db2, MARK)
    assert store.delete("pt-GONE4711")
    assert _bytes_with(db2, MARK) == [] and store.load("other-2") is not None
    store.close()


def _fhir_with_marks() -> dict:
    obs = {
        "resourceType": "Observation", "id": "LOGMARKobs1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/pt-LOGMARK1"},
        "effectiveDateTime": "2024-01-01T10:00:00+00:00",
        "valueQuantity": {"value": 123.4567, "system": "http://unitsofmeasure.org", "code": "/min"},
    }  # fmt: skip
    odd = {"resourceType": "LOGMARKtype", "id": "LOGMARKodd", "note": "LOGMARKnote"}
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": obs}]}, odd


def test_no_request_content_in_any_log_line(trained_gru_bundle, test_client_cls, caplog, tmp_path):
    settings = ServeSettings(tokens=(TOKEN,), state_db=str(tmp_path / "logs.sqlite"))
    caplog.set_level(logging.DEBUG)
    logging.getLogger().setLevel(logging.DEBUG)
    path = "/v1/patients/pt-LOGMARK1/observations"
    good, odd = _fhir_with_marks()
    rows = [
        {"time": 0.5, "code": "HR", "value": 123.4567},
        {"time": 0.6, "code": "LOGMARKcode", "value": 98.7654},
        {"time": 0.7, "code": "Glucose", "value": 111.2222, "unit": "LOGMARKunit"},
    ]
    statuses = []
    batch = {"patients": [{"patient_id": "pt-LOGMARK2", "events": rows}]}
    bad_time = {"observations": [{"time": "LOGMARKtime", "code": "HR", "value": 1}]}
    with test_client_cls(create_app(trained_gru_bundle, settings)) as client:
        calls = [
            ("post", path, {"observations": rows, "static": {"Age": 77.5}},
             {"Idempotency-Key": "LOGMARKkey1"}),
            ("post", path, {"observations": rows[:1]}, {"Idempotency-Key": "LOGMARKkey1"}),
            ("post", path, {"observations": rows}, {"Idempotency-Key": "LOGMARK key bad"}),
            ("post", path, good, {}),
            ("post", path, good | {"entry": good["entry"] + [{"resource": odd}]}, {}),
            ("post", "/v1/predict", good | {"entry": [{"resource": odd}]}, {}),
            ("post", "/v1/predict", batch, {}),
            ("post", path, bad_time, {}),
            ("post", path, {"observations": [{"time": 0.1, "code": "HR", "value": 1.0}]}, {}),
            ("post", path, {"observations": [{"time": 0.5, "code": "2708-6", "value": 97.5}]}, {}),
            ("get", "/v1/patients/pt-LOGMARK1", None, {}),
            ("delete", "/v1/patients/pt-LOGMARK1", None, {}),
            ("get", "/v1/patients/pt-LOGMARK1", None, {}),
        ]  # fmt: skip
        for method, url, body, headers in calls:
            kwargs = {"json": body} if body is not None else {}
            answer = client.request(method.upper(), url, headers=AUTH | headers, **kwargs)
            statuses.append(answer.status_code)
    assert max(statuses) < 500, statuses
    assert 200 in statuses and 409 in statuses and 422 in statuses and 404 in statuses
    # the test's own HTTP client (httpx) logs the URLs it calls; the service's lines are
    # every other logger's, formatted with their exception text
    server = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(r.name == "medseq.serving.access" for r in server)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    text = "\n".join(formatter.format(r) for r in server)
    for needle in ("LOGMARK", "123.4567", "98.7654", "111.2222", "77.5", "97.5"):
        assert needle not in text, needle
