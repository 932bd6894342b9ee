"""Issue 16 item 4: the live monitor page ``GET /monitor`` in headless Chromium.

A real server serves a small MIT-BIH beat bundle (``configs/mitbih-beats.toml``, DS1 only,
one seed, three epochs); Chromium opens ``/monitor#token=...``; then two minutes of MIT-BIH
record 200 (MLII), a record the detector raises AF and V-run alerts on, are sent as 1-s chunks.
The page must show the stream's tile, every alert the acknowledgements reported (same ids,
kinds and episodes, from the SSE feed), the stream's last beat label, and a drawn waveform,
without a console error. The screenshot is kept in ``tmp_path`` and, with
``MEDSEQ_KEEP_SCREENSHOTS=1``, under ``runs/monitor_page/``.

A bundle without signal streams answers ``/monitor`` 404 with a sentence saying why.
No time is asserted (the waits only bound how long the test may take).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from test_report_physionet2012 import _console_errors, _DevTools, _launch, _stop

from live_server import live_server
from medseq.monitoring.records import read_record
from medseq.paths import dataset_dir
from medseq.serving.api import create_app
from medseq.serving.settings import ServeSettings

TOKEN = "monitor-page-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FS = 360
REPO = Path(__file__).resolve().parents[2]
TILES_JS = """JSON.stringify([...document.querySelectorAll('section.tile')].map(t => ({
  id: t.dataset.streamId,
  beat: t.querySelector('.beat').textContent,
  rhythm: t.querySelector('.rhythm').textContent,
  quality: t.dataset.quality,
  drawn: Number(t.querySelector('canvas').dataset.drawn || 0),
  inked: (() => { const c = t.querySelector('canvas');
                  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  let n = 0; for (let i = 1; i < d.length; i += 4) if (d[i] > 120) n++;
                  return n; })(),
  alerts: [...t.querySelectorAll('ol.alerts li')].map(li => ({
    id: Number(li.dataset.alertId), kind: li.dataset.kind, episode: li.dataset.episode})),
})))"""


@pytest.fixture(scope="module")
def beat_bundle(trained_beat_bundle) -> Path:
    """The session's MIT-BIH beat bundle (tests/conftest.py)."""
    return trained_beat_bundle


def _call(port: int, method: str, path: str, body: dict | None = None,
          headers: dict | None = None) -> tuple[int, dict]:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = None if body is None else json.dumps(body)
        sent = AUTH if headers is None else headers
        conn.request(method, path, data, {"Content-Type": "application/json", **sent})
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        conn.close()


def _tiles(tools: _DevTools) -> list[dict]:
    return json.loads(tools.call("Runtime.evaluate", {"expression": TILES_JS})["result"]["value"])


def _keep(shot: Path) -> None:
    if os.environ.get("MEDSEQ_KEEP_SCREENSHOTS") == "1":
        kept = REPO / "runs" / "monitor_page"
        kept.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, kept / shot.name)


def test_monitor_page_shows_a_streamed_record_and_its_alerts(beat_bundle, tmp_path):
    rec = read_record(dataset_dir("mitdb_full") / "200", lead="MLII")
    assert rec.fs_hz == FS
    x = rec.samples[: 120 * FS].astype(np.float64)
    sid = "bed-7"
    settings = ServeSettings(tokens=(TOKEN,), state_db=str(tmp_path / "state.sqlite"))
    with live_server(beat_bundle, settings) as port:
        status, _ = _call(port, "PUT", f"/v1/streams/{sid}", {"fs_hz": FS})
        assert status == 201
        with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
            proc, url = _launch(profile)
            try:
                from websockets.sync.client import connect

                with connect(url, max_size=None, open_timeout=30) as ws:
                    tools = _DevTools(ws)
                    target = tools.call("Target.createTarget", {"url": "about:blank"})
                    attach = {"targetId": target["targetId"], "flatten": True}
                    tools.session = tools.call("Target.attachToTarget", attach)["sessionId"]
                    for domain in ("Page", "Runtime", "Log"):
                        tools.call(f"{domain}.enable")
                    page = f"http://127.0.0.1:{port}/monitor#token={TOKEN}"
                    tools.call("Page.navigate", {"url": page})
                    tools.wait_for("Page.loadEventFired")
                    deadline = time.monotonic() + 60
                    while not _tiles(tools):  # the open stream's tile, before any sample
                        assert time.monotonic() < deadline, "no tile for the open stream"
                        tools.drain(0.3)

                    acks = []
                    for i in range(0, len(x), FS):
                        body = {"start": i, "fs_hz": FS, "samples": x[i : i + FS].tolist()}
                        status, ack = _call(port, "POST", f"/v1/streams/{sid}/samples", body)
                        assert status == 200, ack
                        acks.append(ack)
                    expected = [
                        {"id": a["id"], "kind": a["kind"], "episode": a["episode"]}
                        for ack in acks for a in ack["alerts"]
                    ]  # fmt: skip
                    assert any(a["kind"] == "onset" for a in expected), expected
                    _, state = _call(port, "GET", f"/v1/streams/{sid}")

                    deadline = time.monotonic() + 90
                    while True:  # until the feed delivered every alert and a poll ran
                        tiles = _tiles(tools)
                        tile = tiles[0] if tiles else {}
                        done = tile.get("alerts") and len(tile["alerts"]) == len(expected)
                        if done and tile["beat"] == state["last_beat"]["label"]:
                            break
                        assert time.monotonic() < deadline, (tile, expected)
                        tools.drain(0.5)
                    tools.drain(1.5)  # one more poll: the last samples drawn
                    tiles = _tiles(tools)
                    shot = tmp_path / "monitor.png"
                    png = tools.call("Page.captureScreenshot", {"format": "png"})["data"]
                    shot.write_bytes(base64.b64decode(png))
                    errors = _console_errors(tools.events)
            finally:
                _stop(proc)

        # the data routes need the token like every other; bounds are checked
        status, _ = _call(port, "GET", "/v1/monitor/streams", headers={})
        assert status == 401
        status, body = _call(port, "GET", f"/v1/monitor/streams/{sid}/samples?seconds=31")
        assert status == 422
        status, body = _call(port, "GET", "/v1/monitor/streams/nobody/samples")
        assert status == 404 and "no open stream" in body["detail"]
        status, body = _call(port, "GET", f"/v1/monitor/streams/{sid}/samples?seconds=5")
        assert status == 200 and len(body["samples"]) == 5 * FS
        assert body["start"] == len(x) - 5 * FS
        np.testing.assert_allclose(body["samples"], x[-5 * FS :], atol=1e-4)

    _keep(shot)
    assert errors == [], errors
    assert [t["id"] for t in tiles] == [sid]
    tile = tiles[0]
    # newest first on the page; same alerts, ids, kinds and episodes as acknowledged
    assert list(reversed(tile["alerts"])) == expected
    assert tile["beat"] == state["last_beat"]["label"]
    open_now = ", ".join(state["open_episodes"]) or "no episode"
    assert tile["rhythm"] == open_now
    assert tile["quality"] == state["quality"]["state"]
    assert tile["drawn"] == 8 * FS  # the page's 8-s window, full
    assert tile["inked"] > 500  # the trace is drawn, not a blank canvas
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_monitor_page_refused_without_signal_streams(trained_gru_bundle, tmp_path):
    settings = ServeSettings(tokens=(TOKEN,), state_db=str(tmp_path / "s.sqlite"))
    with TestClient(create_app(trained_gru_bundle, settings)) as client:
        for path in ("/monitor", "/monitor/monitor.js"):
            r = client.get(path)
            assert r.status_code == 404
            detail = r.json()["detail"]
            assert detail.startswith("the live monitor page shows signal streams: ")
            assert len(detail) > 60, detail  # the spec's reason follows
        r = client.get("/v1/monitor/streams", headers=AUTH)
        assert r.status_code == 404
