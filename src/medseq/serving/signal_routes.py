"""The signal-stream routes ``/v1/streams/...`` and the alert feed ``/v1/alerts...``.

Mounted by :mod:`.api` (:func:`mount`) only where the bundle's dataset spec has a
``signal_streaming`` part (:class:`medseq.datasets.signal_streaming.SignalStreaming`);
elsewhere every ``/v1/streams`` path answers 404 with the spec's sentence saying why.

========  =========================================  ==================================
PUT       /v1/streams/{stream_id}                    open: ``{"fs_hz", "lead"?,
                                                     "start_time"?}`` (201; 200 if open)
POST      /v1/streams/{stream_id}/samples            a chunk, JSON or FHIR Observation
                                                     (``valueSampledData``) -> beats,
                                                     alerts, quality of the chunk
GET       /v1/streams/{stream_id}                    state: last beat, quality, open
                                                     episodes, label counts
DELETE    /v1/streams/{stream_id}                    close (rows, alerts deleted)
GET       /v1/streams/{stream_id}/alerts             alerts (``?after=ID``; ``?format=
                                                     fhir``: a Bundle of Observations)
GET       /v1/streams/{stream_id}/events             Server-Sent Events: its alerts
GET       /v1/alerts                                 alerts of every stream
GET       /v1/alerts/events                          Server-Sent Events: every stream
========  =========================================  ==================================

The two ``events`` routes take the token from the ``Authorization`` header or, because a
browser's ``EventSource`` cannot set headers, from ``?access_token=`` (the access log
never prints query strings). Each event is ``id: <alert id>``, ``event: alert``,
``data: <JSON>`` (the FHIR Observation with ``?format=fhir``); a reconnecting client's
``Last-Event-ID`` (or ``?after=``) replays what it missed from the database first.
Comment lines keep idle connections open through proxies.

Answers: 404 for an unknown stream, 409 for an overlapping or out-of-order chunk or a
reused idempotency key with other content, 422 naming the field for a bad body (a wrong
sampling rate included), 413 over the body limit.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response, StreamingResponse

from medseq.serving import schemas
from medseq.serving.alert_feed import CLOSED, AlertFeed
from medseq.serving.alert_fhir import alert_bundle, alert_observation
from medseq.serving.inputs import parse_json
from medseq.serving.requests import RequestError
from medseq.serving.signal_inputs import parse_chunk, parse_open
from medseq.serving.signal_service import (
    SignalStreams,
    StreamConflict,
    StreamInputError,
    StreamNotFound,
)
from medseq.serving.signal_store import Ack

logger = logging.getLogger(__name__)
STAGE = "signal streaming (/v1/streams/...)"
StreamIdPath = Annotated[str, PathParam(pattern=schemas.PATIENT_ID_PATTERN)]
#: Seconds between keep-alive comments on an idle event stream.
HEARTBEAT_S = 15.0


def signal_part(spec: Any) -> tuple[Any, str | None]:
    """The spec's signal-streaming part, or None and the sentence refusing it."""
    from medseq.datasets import StageUnsupported

    try:
        return spec.require("signal_streaming", STAGE), None
    except StageUnsupported as err:
        return None, str(err)


def mount(app: FastAPI, secured: APIRouter) -> None:
    """Add the signal routes to ``secured`` (or the refusing ones), the SSE routes to
    ``app`` with their own token check (header or query)."""
    part, refusal = signal_part(app.state.served.spec)
    app.state.signal_part, app.state.signal_refusal = part, refusal
    app.state.signals, app.state.alert_feed = None, None
    if part is None:
        methods = ["GET", "POST", "PUT", "DELETE"]
        secured.add_api_route("/v1/streams/{rest:path}", no_signals, methods=methods)
        secured.add_api_route("/v1/alerts{rest:path}", no_signals, methods=["GET"])
        return
    secured.add_api_route("/v1/streams/{stream_id}", open_stream, methods=["PUT"])
    secured.add_api_route("/v1/streams/{stream_id}", stream_state, methods=["GET"])
    secured.add_api_route("/v1/streams/{stream_id}", close_stream, methods=["DELETE"])
    secured.add_api_route("/v1/streams/{stream_id}/samples", samples, methods=["POST"])
    secured.add_api_route("/v1/streams/{stream_id}/alerts", stream_alerts, methods=["GET"])
    secured.add_api_route("/v1/alerts", all_alerts, methods=["GET"])
    app.add_api_route("/v1/streams/{stream_id}/events", stream_events, methods=["GET"])
    app.add_api_route("/v1/alerts/events", all_events, methods=["GET"])


def open_signals(app: FastAPI) -> Any:
    """At start-up: the store, the detectors' factory and the feed; returns a closer."""
    part = app.state.signal_part
    if part is None or app.state.bundle is None:
        return None
    from medseq.serving.signal_store import SignalStore

    settings = app.state.settings
    try:
        make, classifier = part.detector_factory(app.state.bundle_dir)
    except (ValueError, KeyError, TypeError) as err:  # a beat model the detector cannot run
        app.state.signal_refusal = f"signal streaming is not available for this model: {err}"
        logger.warning("signal streams disabled: %s", app.state.signal_refusal)
        return None
    store = SignalStore(settings.state_db, settings.synchronous)
    feed = AlertFeed()
    app.state.alert_feed = feed
    app.state.signals = SignalStreams(
        make, store, app.state.version, fs_hz=part.fs_hz,
        lead=part.lead_of(app.state.manifest.get("featurizer", {})),
        class_names=classifier.class_names, lead_names=part.lead_names,
        max_cached=getattr(settings, "max_cached_streams", 1000), publish=feed.publish,
    )  # fmt: skip
    app.state.metrics.gauge("medseq_open_streams", "Open signal streams.", store.stream_count)
    app.state.metrics.gauge("medseq_alert_followers", "Open alert event streams.", feed.count)

    sweeper = None
    if settings.retention_hours is not None:  # idle streams closed, as idle ICU stays
        from medseq.serving.service import sweep_forever

        every, hours = settings.retention_sweep_seconds, settings.retention_hours
        sweeper = asyncio.ensure_future(sweep_forever(app.state.signals, hours, every))

    def close() -> None:
        if sweeper is not None:
            sweeper.cancel()
        feed.close()
        store.close()

    return close


def _signals(request: Request) -> SignalStreams:
    state = request.app.state
    if state.signals is None:
        if state.unavailable:  # the bundle needs an extra this install lacks
            raise HTTPException(503, state.unavailable)
        raise HTTPException(409, state.signal_refusal or "signal streams are not available")
    return state.signals


def _errors(err: Exception) -> HTTPException | RequestError:
    if isinstance(err, StreamNotFound):
        return HTTPException(
            404, "no open stream with this id: open it with PUT /v1/streams/{stream_id}"
        )
    if isinstance(err, StreamConflict):
        return HTTPException(409, str(err))
    if isinstance(err, StreamInputError):
        return RequestError.at(("body", err.field), str(err))
    raise err


async def no_signals(request: Request, rest: str) -> None:
    """Signal routes of a dataset without signal streaming: 404 with the spec's reason."""
    raise HTTPException(404, request.app.state.signal_refusal)


async def open_stream(request: Request, stream_id: StreamIdPath) -> JSONResponse:
    """Open a stream at the bundle's sampling rate (201; 200 when it is already open)."""
    signals = _signals(request)
    fs, lead, start_time = parse_open(parse_json(await request.body()))
    pool = request.app.state.pool
    try:
        state, new = await pool.run(pool.locked, signals.open, stream_id, fs, lead, start_time)
    except (StreamConflict, StreamInputError) as err:
        raise _errors(err) from None
    return JSONResponse(state, status_code=201 if new else 200)


async def samples(request: Request, stream_id: StreamIdPath) -> Response:
    """Apply one chunk; answers after it is committed (``Idempotent-Replayed: true`` for
    a retry answered from the stored acknowledgement). The body is the acknowledgement's
    JSON text as stored, not encoded a second time."""
    signals = _signals(request)
    key = request.headers.get("idempotency-key")
    if key is not None and not re.fullmatch(schemas.IDEMPOTENCY_KEY_PATTERN, key):
        raise RequestError.at(
            ("header", "Idempotency-Key"),
            "must be 1-128 letters, digits, '.', '_', ':' or '-' (e.g. a UUID)",
        )
    raw = await request.body()
    state = request.app.state
    # a 1-s chunk is 3-4 KB of JSON: applied on the loop when the state lock is free
    small = len(raw) <= 4 * state.settings.inline_body_bytes

    def run() -> tuple[Ack, bool]:
        chunk = parse_chunk(parse_json(raw), key)
        try:
            return state.pool.locked(signals.push, stream_id, chunk)
        except (StreamNotFound, StreamConflict, StreamInputError) as err:
            raise _errors(err) from None

    ack, replayed = await state.pool.run_small(small, run)
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return Response(ack.text, media_type="application/json", headers=headers)


async def stream_state(request: Request, stream_id: StreamIdPath) -> dict[str, Any]:
    signals, pool = _signals(request), request.app.state.pool
    try:
        state = await pool.run(pool.locked, signals.get, stream_id)
    except StreamConflict as err:
        raise _errors(err) from None
    if state is None:
        raise _errors(StreamNotFound(stream_id))
    return state


async def close_stream(request: Request, stream_id: StreamIdPath) -> dict[str, Any]:
    """Close a stream: its state, chunks, acknowledgements and alerts are deleted."""
    signals, pool = _signals(request), request.app.state.pool
    state = await pool.run(pool.locked, signals.close, stream_id)
    if state is None:
        raise _errors(StreamNotFound(stream_id))
    return state


AfterQuery = Annotated[int, Query(ge=0, le=2**62)]
LimitQuery = Annotated[int, Query(ge=1, le=10_000)]
FormatQuery = Annotated[str, Query(pattern="^(json|fhir)$")]


async def stream_alerts(
    request: Request, stream_id: StreamIdPath, after: AfterQuery = 0,
    limit: LimitQuery = 1000, format: FormatQuery = "json",
) -> Any:  # fmt: skip
    """The stream's alerts after ``after`` (JSON, or a FHIR Bundle of Observations)."""
    return await _alerts(request, stream_id, after, limit, format)


async def all_alerts(
    request: Request, after: AfterQuery = 0, limit: LimitQuery = 1000,
    format: FormatQuery = "json",
) -> Any:  # fmt: skip
    """Every stream's alerts after ``after``."""
    return await _alerts(request, None, after, limit, format)


async def _alerts(request: Request, stream_id: str | None, after: int, limit: int, fmt: str) -> Any:
    signals, pool = _signals(request), request.app.state.pool
    try:
        alerts = await pool.run(pool.locked, signals.alerts, stream_id, after, limit)
    except StreamNotFound as err:
        raise _errors(err) from None
    if fmt == "fhir":
        starts = await pool.run(pool.locked, _start_times, signals, alerts)
        return alert_bundle(alerts, starts, signals.version)
    return {"alerts": alerts}


def _start_times(signals: SignalStreams, alerts: list[dict]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for sid in {a["stream_id"] for a in alerts}:
        state = signals.get(sid)
        out[sid] = None if state is None else state["start_time"]
    return out


# --- Server-Sent Events ---------------------------------------------------------------


def _sse_auth(request: Request, access_token: str | None) -> None:
    tokens: tuple[str, ...] = request.app.state.settings.tokens
    header = request.headers.get("authorization", "")
    given = header[7:] if header[:7].lower() == "bearer " else (access_token or "")
    if not any(hmac.compare_digest(given.encode(), t.encode()) for t in tokens):
        raise HTTPException(401, "missing or invalid bearer token",
                            headers={"WWW-Authenticate": "Bearer"})  # fmt: skip


def _last_id(request: Request, after: int | None) -> int:
    raw = request.headers.get("last-event-id")
    if raw is not None:
        if not raw.isdigit() or len(raw) > 18:
            raise RequestError.at(("header", "Last-Event-ID"), "must be an alert id (digits)")
        return int(raw)
    return after or 0


TokenQuery = Annotated[str | None, Query(max_length=512)]


async def stream_events(
    request: Request, stream_id: StreamIdPath, after: Annotated[int | None, Query(ge=0)] = None,
    format: FormatQuery = "json", access_token: TokenQuery = None,
) -> StreamingResponse:  # fmt: skip
    """Follow one stream's alerts (Server-Sent Events)."""
    _sse_auth(request, access_token)
    signals = _signals(request)
    pool = request.app.state.pool
    try:
        state = await pool.run(pool.locked, signals.get, stream_id)
    except StreamConflict as err:
        raise _errors(err) from None
    if state is None:
        raise _errors(StreamNotFound(stream_id))
    return _event_response(request, stream_id, _last_id(request, after), format)


async def all_events(
    request: Request, after: Annotated[int | None, Query(ge=0)] = None,
    format: FormatQuery = "json", access_token: TokenQuery = None,
) -> StreamingResponse:  # fmt: skip
    """Follow every stream's alerts (Server-Sent Events)."""
    _sse_auth(request, access_token)
    _signals(request)
    return _event_response(request, None, _last_id(request, after), format)


def _event_response(
    request: Request, stream_id: str | None, last: int, fmt: str
) -> StreamingResponse:
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        _events(request, stream_id, last, fmt), media_type="text/event-stream", headers=headers
    )


async def _events(
    request: Request, stream_id: str | None, last: int, fmt: str
) -> AsyncIterator[str]:
    state = request.app.state
    signals: SignalStreams = state.signals
    feed: AlertFeed = state.alert_feed
    sub = feed.subscribe(stream_id)  # before the replay: nothing falls between the two
    starts: dict[str, str | None] = {}

    def encode(alert: dict[str, Any]) -> str:
        data: Any = alert
        if fmt == "fhir":
            sid = alert["stream_id"]
            if sid not in starts:
                got = signals.get(sid)
                starts[sid] = None if got is None else got["start_time"]
            data = alert_observation(alert, starts[sid], signals.version)
        return f"id: {alert['id']}\nevent: alert\ndata: {json.dumps(data)}\n\n"

    try:
        yield ": medseq alert feed\nretry: 2000\n\n"
        while True:  # the stored alerts after `last`, in pages
            page = await state.pool.run(state.pool.locked, signals.store.alerts, stream_id,
                                        last, 500)  # fmt: skip
            for alert in page:
                last = alert["id"]
                yield encode(alert)
            if len(page) < 500:
                break
        while True:
            try:
                alert = await asyncio.wait_for(sub.queue.get(), HEARTBEAT_S)
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if alert is CLOSED:
                return  # lagging or shutting down: the client reconnects with Last-Event-ID
            if alert["id"] > last:
                last = alert["id"]
                yield encode(alert)
    finally:
        feed.unsubscribe(sub)
