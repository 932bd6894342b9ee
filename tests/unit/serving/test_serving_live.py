"""Issue 21, items 2 and 5, against the real server (uvicorn on 127.0.0.1, in a thread).

* While an 8 MB request of real stays is parsed, validated and scored, ``/healthz`` keeps
  answering (the work runs in the worker pool, not on the event loop).
* Connections that never finish their headers are closed after ``header_timeout_s``; one
  beyond ``max_connections`` is answered 503 and closed at once; a body that stops half way
  is cut after ``body_timeout_s``; the server answers afterwards.

No time is asserted: the tests assert what happened in what order.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest
from serving_helpers import AUTH, TOKEN, event_rows, stays

from live_server import live_server
from medseq.serving.settings import ServeSettings


def _healthz(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status
    finally:
        conn.close()


def _big_body(setb, limit: int) -> bytes:
    """Real set-B stays with UCUM units, as many as fit in ``limit`` bytes (at most 256)."""
    from medseq.datasets.physionet2012_serving import code_table

    table = code_table()
    patients: list[dict] = []
    size = 20
    for sid, events, static in stays(setb, 0, 256):
        rows = [r | {"unit": table.entries[r["code"]]["unit"]} for r in event_rows(events)]
        item = {"patient_id": f"p{sid}", "static": static, "events": rows}
        size += len(json.dumps(item)) + 2
        if size > limit:
            break
        patients.append(item)
    return json.dumps({"patients": patients}).encode()


def test_healthz_answers_while_an_8mb_request_is_processed(trained_gru_bundle, setb):
    settings = ServeSettings(tokens=(TOKEN,))
    body = _big_body(setb, settings.max_body_bytes - 1024)
    assert len(body) > 7 * 1024 * 1024
    times: dict[str, float] = {}
    status: dict[str, int] = {}

    def big() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        headers = AUTH | {"Content-Type": "application/json"}
        conn.request("POST", "/v1/predict", body=body, headers=headers)
        times["sent"] = time.monotonic()  # the whole body is on its way
        answer = conn.getresponse()
        answer.read()
        status["big"], times["answered"] = answer.status, time.monotonic()

    with live_server(trained_gru_bundle, settings) as port:
        thread = threading.Thread(target=big)
        thread.start()
        healthz: list[tuple[float, int]] = []
        while thread.is_alive():
            code = _healthz(port)
            healthz.append((time.monotonic(), code))
        thread.join()
    assert status["big"] == 200
    during = [code for t, code in healthz if times["sent"] < t < times["answered"]]
    assert len(during) >= 3, (len(during), len(healthz))  # answered while it was in flight
    assert set(during) == {200}


def _open(port: int, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(data)
    return sock


def _read_all(sock: socket.socket) -> bytes | None:
    """What the server sent until it closed the connection (``RESET`` if it reset it,
    which a refusal does when the request's first bytes are still unread); None if the
    server never closed it."""
    chunks = []
    try:
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    except TimeoutError:
        return None
    except ConnectionResetError:
        return RESET
    finally:
        sock.close()
    return b"".join(chunks)


RESET = b"<reset>"
PARTIAL_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n"


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_slow_headers_are_closed_and_connections_beyond_the_cap_refused(
    trained_gru_bundle, http, monkeypatch
):
    """Both of uvicorn's HTTP protocol classes are guarded the same way."""
    import importlib

    module, name = {
        "httptools": ("uvicorn.protocols.http.httptools_impl", "HttpToolsProtocol"),
        "h11": ("uvicorn.protocols.http.h11_impl", "H11Protocol"),
    }[http]
    base = getattr(importlib.import_module(module), name)
    monkeypatch.setattr("medseq.serving.protocol.default_protocol", lambda: base)
    cap, n_clients = 20, 40
    settings = ServeSettings(tokens=(TOKEN,), max_connections=cap, header_timeout_s=2.0)
    with live_server(trained_gru_bundle, settings) as port:
        socks = []
        for _ in range(n_clients):
            socks.append(_open(port, PARTIAL_HEADERS))
            time.sleep(0.01)  # connections are accepted in the order they were opened
        answers = [_read_all(s) for s in socks]
        assert _healthz(port) == 200  # alive, and free connections again
    assert all(a is not None for a in answers)  # every one was closed by the server
    refused = [a for a in answers if a is not None and a.startswith((b"HTTP/1.1 503", RESET))]
    timed_out = [a for a in answers if a == b""]
    assert len(refused) + len(timed_out) == n_clients
    assert len(refused) >= 1 and len(timed_out) >= 1
    assert len(timed_out) >= cap  # the first ``cap`` held their slots until timed out


def test_a_body_that_stops_half_way_is_cut(trained_gru_bundle):
    settings = ServeSettings(tokens=(TOKEN,), body_timeout_s=1.0)
    head = (
        b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Authorization: " + AUTH["Authorization"].encode() + b"\r\nContent-Length: 5000\r\n\r\n"
    )
    with live_server(trained_gru_bundle, settings) as port:
        answer = _read_all(_open(port, head + b'{"patients": ['))
        assert _healthz(port) == 200
    assert answer is not None  # closed by the server, not left open
    assert not answer.startswith(b"HTTP/1.1 5")
