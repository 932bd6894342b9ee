"""kill -9 the server mid-stay, restart it on the same state file: nothing acknowledged is
lost and the next risks equal an uninterrupted run (real stays, uvicorn on 127.0.0.1)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from medseq.bundle import load_bundle
from medseq.serving.engine import Observation, StreamingEngine
from medseq.sources import physionet2012

TOKEN = "restart-token-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(bundle, db, port) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "medseq.cli", "serve", str(bundle), "--host", "127.0.0.1",
           "--port", str(port), "--state-db", str(db)]  # fmt: skip
    env = os.environ | {"MEDSEQ_SERVE_TOKENS": TOKEN}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if _call(port, "GET", "/healthz")[0] == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise TimeoutError("server did not start within 60 s")


def _call(port, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    answer = conn.getresponse()
    data = json.loads(answer.read() or b"null")
    conn.close()
    return answer.status, data


def _chunks(events):
    """One request per charting time, in time order (how a monitor would send them)."""
    for t in np.unique(events.time.to_numpy()):
        part = events[events.time == t]
        pairs = zip(part.code, part.value, strict=True)
        yield [{"time": float(t), "code": c, "value": float(v)} for c, v in pairs]


@pytest.mark.slow
def test_kill_9_and_restart_loses_nothing(trained_gru_bundle, physionet2012_dir, tmp_path):
    data = physionet2012.read(physionet2012_dir / "set-b.tar.gz")
    bundle = load_bundle(trained_gru_bundle)
    engine = StreamingEngine(bundle)
    ids = data.static.index.to_numpy()[700:703]
    db, port = tmp_path / "state.sqlite", _free_port()
    plans, acknowledged = {}, {}
    server = _start(trained_gru_bundle, db, port)
    try:
        for sid in ids:
            events = data.events[data.events.subject_id == sid]
            static = {k: float(v) for k, v in data.static.loc[sid].items() if v == v}
            plans[sid] = (list(_chunks(events)), static)
            chunks = plans[sid][0]
            for k, chunk in enumerate(chunks[: len(chunks) // 2]):
                body = {"observations": chunk} | ({"static": static} if k == 0 else {})
                status, answer = _call(port, "POST", f"/v1/patients/s{sid}/observations", body)
                assert status == 200, answer
                acknowledged[sid] = answer
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(10)
    server = _start(trained_gru_bundle, db, port)
    try:
        for sid in ids:
            status, state = _call(port, "GET", f"/v1/patients/s{sid}")
            assert status == 200
            assert state["n_observations"] == acknowledged[sid]["n_observations"]
            assert state["risk"] == acknowledged[sid]["risk"]
            chunks, static = plans[sid]
            uninterrupted = engine.new_state(static)
            for k, chunk in enumerate(chunks):
                obs = [Observation(e["code"], e["time"], e["value"]) for e in chunk]
                expected = engine.update(uninterrupted, obs).risk
                if k >= len(chunks) // 2:
                    status, answer = _call(
                        port, "POST", f"/v1/patients/s{sid}/observations", {"observations": chunk}
                    )
                    assert status == 200 and abs(answer["risk"] - expected) <= 1e-12
            events = data.events[data.events.subject_id == sid]
            features = bundle.featurizer.transform(events, data.static, np.array([sid]))
            batch = bundle.predict_arrays(features)[0]
            assert abs(answer["risk"] - batch) <= 1e-5
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)


@pytest.mark.slow
def test_kill_9_under_concurrent_updates_loses_nothing_acknowledged(
    trained_gru_bundle, physionet2012_dir, tmp_path
):
    """Group commit: 8 clients send single observations at once, so updates share commits
    (the metrics say so); kill -9 mid-load; every acknowledged observation is stored, and
    at most each client's one unanswered request beyond."""
    import threading

    data = physionet2012.read(physionet2012_dir / "set-b.tar.gz")
    ids = data.static.index.to_numpy()[720:736]
    plans = {}
    for sid in ids:
        events = data.events[data.events.subject_id == sid]
        rows = zip(events.time, events.code, events.value, strict=True)
        plans[f"c{sid}"] = [{"time": float(t), "code": c, "value": float(v)} for t, c, v in rows]
    acked = dict.fromkeys(plans, 0)
    db, port = tmp_path / "state.sqlite", _free_port()
    server = _start(trained_gru_bundle, db, port)
    stop = threading.Event()

    def client(pids: list[str]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        try:
            for k in range(max(len(plans[p]) for p in pids)):
                for pid in pids:
                    if stop.is_set():
                        return
                    if k < len(plans[pid]):
                        body = json.dumps({"observations": [plans[pid][k]]})
                        conn.request("POST", f"/v1/patients/{pid}/observations", body, headers)
                        answer = conn.getresponse()
                        answer.read()
                        if answer.status == 200:
                            acked[pid] = k + 1
        except (OSError, http.client.HTTPException):
            return  # the kill

    pids = list(plans)
    threads = [threading.Thread(target=client, args=(pids[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while sum(acked.values()) < 600 and time.monotonic() < deadline:
        time.sleep(0.01)
    _, metrics = _call_text(port, "/metrics")
    server.send_signal(signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join(30)
    server.wait(10)
    lines = metrics.splitlines()
    counts = dict(x.split() for x in lines if x.startswith("medseq_group_commit"))
    assert float(counts["medseq_group_committed_updates"]) > float(counts["medseq_group_commits"])
    before_kill = dict(acked)
    server = _start(trained_gru_bundle, db, port)
    try:
        for pid, n in before_kill.items():
            status, state = _call(port, "GET", f"/v1/patients/{pid}")
            stored = state["n_observations"] if status == 200 else 0
            assert n <= stored <= n + 1, (pid, n, stored)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)


def _call_text(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
    answer = conn.getresponse()
    text = answer.read().decode()
    conn.close()
    return answer.status, text
