"""The live monitor page ``GET /monitor``: one tile per open signal stream.

A clinician or engineer opens ``/monitor`` in a browser on a service that serves a signal
bundle. The page (one static HTML file and one small vanilla-JS file, shipped as package
data: no CDN, no build step) shows, per open stream, the last seconds of waveform on a
canvas, the last beat's label and probabilities, the open episodes (the rhythm), the
signal-quality state and the alert history, updating live:

* alerts arrive on the service's Server-Sent Events feed ``/v1/alerts/events`` (the token
  goes in ``?access_token=`` because a browser's ``EventSource`` cannot set headers);
* the stream list with each state, and the samples since the page's last look, are polled
  every second from the two read-only routes below (the SSE feed carries alerts only).

========  =============================================  ===============================
GET       /monitor                                       the page (no token: it holds no
                                                         data; the token is typed once or
                                                         given as ``#token=`` in the URL)
GET       /monitor/monitor.js                            its script
GET       /v1/monitor/streams                            open streams and their state
                                                         (``?limit=``, at most 200)
GET       /v1/monitor/streams/{stream_id}/samples        the last ``seconds`` (<= 30) of
                                                         samples, or those after sample
                                                         index ``after``
========  =============================================  ===============================

The two ``/v1`` routes need the bearer token like every other. The recent samples are kept
in memory only (:class:`RecentSamples`: 30 s per stream, as many streams as the detector
cache holds), so after a restart a tile's waveform refills from the next chunk on; the
durable record of a stream stays the signal store. A service whose dataset has no signal
streaming answers every route here with 404 and the dataset spec's sentence saying why.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from importlib import resources
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response

from medseq.serving import schemas

#: Seconds of samples kept per stream for the page.
RECENT_S = 30.0
#: Most tiles one listing returns.
MAX_TILES = 200
StreamIdPath = Annotated[str, PathParam(pattern=schemas.PATIENT_ID_PATTERN)]


class RecentSamples:
    """The last ``seconds`` of samples of up to ``max_streams`` streams (least recently
    written dropped first), for drawing; bounded in memory whatever the streams send.

    Examples
    --------
    >>> recent = RecentSamples(seconds=2.0, max_streams=10)
    >>> recent.add("a", 0, np.arange(3.0), fs_hz=1.0)
    >>> recent.add("a", 3, np.arange(3.0, 5.0), fs_hz=1.0)
    >>> recent.window("a")
    (3, [3.0, 4.0])
    """

    def __init__(self, seconds: float = RECENT_S, max_streams: int = 1000) -> None:
        self.seconds = seconds
        self.max_streams = max_streams
        self._chunks: OrderedDict[str, deque[tuple[int, np.ndarray]]] = OrderedDict()
        self._fs: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, stream_id: str, start: int, samples: np.ndarray, fs_hz: float) -> None:
        keep = max(1, round(self.seconds * fs_hz))
        with self._lock:
            chunks = self._chunks.get(stream_id)
            if chunks is None:
                chunks = self._chunks[stream_id] = deque()
            self._chunks.move_to_end(stream_id)
            self._fs[stream_id] = fs_hz
            x = np.asarray(samples, dtype=np.float64)
            end = start + len(x)
            chunks.append((end - min(len(x), keep), x[-keep:].copy()))
            while chunks and chunks[0][0] + len(chunks[0][1]) <= end - keep:
                chunks.popleft()
            while len(self._chunks) > self.max_streams:
                old, _ = self._chunks.popitem(last=False)
                self._fs.pop(old, None)

    def drop(self, stream_id: str) -> None:
        with self._lock:
            self._chunks.pop(stream_id, None)
            self._fs.pop(stream_id, None)

    def retain(self, open_ids: set[str]) -> None:
        """Forget the streams no longer open (closed or swept)."""
        with self._lock:
            for sid in [s for s in self._chunks if s not in open_ids]:
                self._chunks.pop(sid)
                self._fs.pop(sid, None)

    def window(
        self, stream_id: str, seconds: float | None = None, after: int | None = None
    ) -> tuple[int, list[float | None]]:
        """(index of the first sample, samples) of the last ``seconds`` (default: all
        kept), or from index ``after`` on; a gap between chunks reads as ``None``."""
        with self._lock:
            chunks = list(self._chunks.get(stream_id, ()))
            fs = self._fs.get(stream_id, 1.0)
        if not chunks:
            return (after or 0), []
        end = chunks[-1][0] + len(chunks[-1][1])
        lo = chunks[0][0]
        if seconds is not None:
            lo = max(lo, end - round(seconds * fs))
        if after is not None:
            lo = max(lo, after)
        if lo >= end:
            return end, []
        out = np.full(end - lo, np.nan)
        for start, x in chunks:
            a, b = max(start, lo), start + len(x)
            if b > a:
                out[a - lo : b - lo] = x[a - start :]
        return lo, [None if math.isnan(v) else round(float(v), 4) for v in out]


def _asset(name: str) -> str:
    return resources.files("medseq.serving").joinpath("monitor_static", name).read_text("utf-8")


def mount(app: FastAPI, secured: APIRouter) -> None:
    """Add the page and its two data routes (after :func:`signal_routes.mount`, whose
    ``app.state.signal_part`` says whether the bundle streams signals)."""
    app.add_api_route("/monitor", page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/monitor/monitor.js", script, methods=["GET"], include_in_schema=False)
    secured.add_api_route("/v1/monitor/streams", streams, methods=["GET"])
    secured.add_api_route("/v1/monitor/streams/{stream_id}/samples", samples, methods=["GET"])


def attach(app: FastAPI) -> None:
    """At start-up, after the signal streams opened: feed their chunks to the buffer."""
    signals = getattr(app.state, "signals", None)
    if signals is None:
        return
    recent = RecentSamples(RECENT_S, getattr(app.state.settings, "max_cached_streams", 1000))
    app.state.recent_samples = recent

    signals.listeners.append(recent.add)


def _refuse(request: Request) -> None:
    if getattr(request.app.state, "signal_part", None) is None:
        reason = getattr(request.app.state, "signal_refusal", None) or "no signal streams"
        raise HTTPException(404, f"the live monitor page shows signal streams: {reason}")


async def page(request: Request) -> HTMLResponse:
    """The monitor page (static; no token needed to load it, none of it is data)."""
    _refuse(request)
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return HTMLResponse(_asset("monitor.html"), headers=headers)


async def script(request: Request) -> Response:
    _refuse(request)
    return Response(_asset("monitor.js"), media_type="text/javascript",
                    headers={"Cache-Control": "no-store"})  # fmt: skip


def _signals(request: Request) -> Any:
    _refuse(request)
    signals = getattr(request.app.state, "signals", None)
    if signals is None:
        raise HTTPException(503, request.app.state.unavailable or "signal streams unavailable")
    return signals


async def streams(
    request: Request, limit: Annotated[int, Query(ge=1, le=MAX_TILES)] = 50
) -> dict[str, Any]:
    """The open streams (ids in order, up to ``limit``) with their states."""
    signals, pool = _signals(request), request.app.state.pool

    def read() -> tuple[list[dict[str, Any]], int]:
        ids = sorted(signals.store.stream_ids())
        recent = getattr(request.app.state, "recent_samples", None)
        if recent is not None:
            recent.retain(set(ids))
        states = [s for s in (signals.get(sid) for sid in ids[:limit]) if s is not None]
        return states, len(ids)

    states, total = await pool.run(pool.locked, read)
    return {"streams": states, "total": total, "class_names": signals.class_names}


async def samples(
    request: Request, stream_id: StreamIdPath,
    seconds: Annotated[float, Query(gt=0, le=RECENT_S)] = 10.0,
    after: Annotated[int | None, Query(ge=0, le=2**62)] = None,
) -> dict[str, Any]:  # fmt: skip
    """The last ``seconds`` of the stream's samples (or those after index ``after``,
    within the same window); ``null`` marks a gap."""
    signals, pool = _signals(request), request.app.state.pool
    state = await pool.run(pool.locked, signals.get, stream_id)
    recent: RecentSamples | None = getattr(request.app.state, "recent_samples", None)
    if state is None:
        if recent is not None:
            recent.drop(stream_id)
        raise HTTPException(
            404, "no open stream with this id: open it with PUT /v1/streams/{stream_id}"
        )
    start, values = (0, []) if recent is None else recent.window(stream_id, seconds, after)
    return {
        "stream_id": stream_id, "fs_hz": state["fs_hz"], "start": start,
        "next_sample": state["next_sample"], "samples": values,
    }  # fmt: skip
