"""Issue 16 item 3 against real servers: the alert feed (Server-Sent Events) and kill -9.

* A browser-style client follows one stream's alerts and every stream's alerts; each gets
  exactly the alerts the chunks' acknowledgements reported, in order, with their ids; one
  reconnecting with ``Last-Event-ID`` gets what it missed from the database.
* ``medseq serve`` in a subprocess receives four real MIT-BIH records as concurrent 1-s
  chunk streams and is killed (``kill -9``) half way; a new server on the same state file
  answers every chunk acknowledged before the kill as already applied, and the streams
  continue: labels, probabilities and alerts equal the uninterrupted run.

No time is asserted.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from serving_helpers import AUTH, TOKEN
from test_signal_streams import FS, _direct, _from_acks, _record, _settings

from live_server import free_port, live_server


def _post(port: int, path: str, body: dict, method: str = "POST") -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, json.dumps(body), {**AUTH, "Content-Type": "application/json"})
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        conn.close()


class _Follower(threading.Thread):
    """Reads an event stream until ``n`` alerts arrived (or the connection ends)."""

    def __init__(self, port: int, path: str, n: int, headers: dict | None = None) -> None:
        super().__init__(daemon=True)
        self.port, self.path, self.n, self.headers = port, path, n, headers or {}
        self.events: list[dict] = []
        self.ready = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        conn.request("GET", self.path, headers=self.headers)
        answer = conn.getresponse()
        assert answer.status == 200
        assert answer.getheader("content-type").startswith("text/event-stream")
        event: dict = {}
        while len(self.events) < self.n:
            line = answer.fp.readline().decode()
            if not line:
                break
            line = line.rstrip("\n")
            if line.startswith(": medseq"):
                self.ready.set()
            elif line.startswith("id: "):
                event["id"] = int(line[4:])
            elif line.startswith("data: "):
                event["data"] = json.loads(line[6:])
            elif line == "" and event:
                self.events.append(event)
                event = {}
        conn.close()


def test_alert_feed_follows_one_and_all_streams(trained_beat_bundle, tmp_path):
    x = _record("200", 120)
    n_alerts = len(_direct(trained_beat_bundle, x)[1])
    assert n_alerts >= 3
    settings = _settings(str(tmp_path / "feed.sqlite"))
    with live_server(trained_beat_bundle, settings) as port:
        for sid in ("one", "two"):
            assert _post(port, f"/v1/streams/{sid}", {"fs_hz": FS}, "PUT")[0] == 201
        # the token in the query string: what a browser's EventSource can send
        mine = _Follower(port, f"/v1/streams/one/events?access_token={TOKEN}", n_alerts)
        every = _Follower(port, "/v1/alerts/events", 2 * n_alerts, AUTH)
        for f in (mine, every):
            f.start()
            assert f.ready.wait(60)
        acks: dict[str, list] = {"one": [], "two": []}
        for i in range(0, len(x), FS):
            for sid in acks:
                status, ack = _post(port, f"/v1/streams/{sid}/samples",
                                    {"start": i, "samples": x[i : i + FS].tolist()})  # fmt: skip
                assert status == 200
                acks[sid].append(ack)
        mine.join(60)
        every.join(60)
        sent = {sid: [a for ack in acks[sid] for a in ack["alerts"]] for sid in acks}
        assert [e["id"] for e in mine.events] == [a["id"] for a in sent["one"]]
        assert [e["data"]["kind"] for e in mine.events] == [a["kind"] for a in sent["one"]]
        assert sorted(e["id"] for e in every.events) == sorted(
            a["id"] for s in sent.values() for a in s
        )
        assert {e["data"]["stream_id"] for e in every.events} == {"one", "two"}
        # reconnecting after the first alert: the rest, replayed from the database
        first = sent["one"][0]["id"]
        late = _Follower(port, "/v1/streams/one/events?format=fhir", n_alerts - 1,
                         {**AUTH, "Last-Event-ID": str(first)})  # fmt: skip
        late.start()
        late.join(60)
        assert [e["id"] for e in late.events] == [a["id"] for a in sent["one"][1:]]
        assert all(e["data"]["resourceType"] == "Observation" for e in late.events)
        # no token, no feed
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/v1/alerts/events?access_token=wrong-token-0123456789")
        assert conn.getresponse().status == 401


def _start(bundle: Path, db: Path, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "medseq.cli", "serve", str(bundle), "--host", "127.0.0.1",
           "--port", str(port), "--state-db", str(db)]  # fmt: skip
    env = os.environ | {"MEDSEQ_SERVE_TOKENS": TOKEN}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise TimeoutError("medseq serve did not start")


def test_kill_9_under_load_loses_no_acknowledged_chunk(trained_beat_bundle, tmp_path):
    records = {name: _record(name, 100) for name in ("200", "203", "210", "232")}
    n_chunks = {name: len(x) // FS for name, x in records.items()}
    total = sum(n_chunks.values())
    db, port = tmp_path / "kill.sqlite", free_port()
    state = {"proc": _start(trained_beat_bundle, db, port), "acked": 0}
    acks: dict[str, dict[int, dict]] = {name: {} for name in records}
    before_kill: dict[str, dict[int, dict]] = {}
    lock = threading.Lock()
    up = threading.Event()
    up.set()

    def stream(name: str) -> None:
        x = records[name]
        k = 0
        while k < n_chunks[name]:
            up.wait()
            body = {"start": k * FS, "samples": x[k * FS : (k + 1) * FS].tolist()}
            try:
                status, ack = _post(port, f"/v1/streams/{name}/samples", body)
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
                continue  # the server is gone: retry the same chunk
            assert status == 200, ack
            with lock:
                acks[name][k] = ack
                state["acked"] += 1
            k += 1

    for name in records:
        assert _post(port, f"/v1/streams/{name}", {"fs_hz": FS}, "PUT")[0] == 201
    threads = [threading.Thread(target=stream, args=(n,), daemon=True) for n in records]
    for t in threads:
        t.start()
    while state["acked"] < total // 2:  # half way by construction, not by a guessed delay
        time.sleep(0.01)
    up.clear()
    state["proc"].send_signal(signal.SIGKILL)
    state["proc"].wait()
    with lock:
        before_kill = {n: dict(a) for n, a in acks.items()}
    state["proc"] = _start(trained_beat_bundle, db, port)
    up.set()
    for t in threads:
        t.join(600)
    try:
        # every chunk acknowledged before the kill is known to the new server: a retry of
        # it is answered with the same acknowledgement (idempotent, from the database)
        for name, done in before_kill.items():
            last = max(done)
            x = records[name]
            body = {"start": last * FS, "samples": x[last * FS : (last + 1) * FS].tolist()}
            status, again = _post(port, f"/v1/streams/{name}/samples", body)
            assert status == 200 and again == done[last], name
        for name, x in records.items():
            got = _from_acks([acks[name][k] for k in range(n_chunks[name])])
            want = _direct(trained_beat_bundle, x[: n_chunks[name] * FS])
            assert got[0] == want[0], name  # beats: sample, label, probabilities, quality
            assert got[1] == want[1], name  # alerts
        assert sum(len(d) for d in before_kill.values()) >= total // 2
        assert any(len(d) < n_chunks[n] for n, d in before_kill.items())  # killed mid-stream
        assert np.all([len(acks[n]) == n_chunks[n] for n in records])
    finally:
        state["proc"].kill()
        state["proc"].wait()
