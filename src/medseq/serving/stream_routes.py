"""The streaming routes ``/v1/patients/{patient_id}...``, mounted by :mod:`.api` only where
the bundle's dataset spec has a ``streaming`` part, whose module parses the update bodies
(``observations``) and opens the service (``open_service``)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi import HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from medseq.serving import schemas
from medseq.serving.engine import ObservationError
from medseq.serving.inputs import parse_json
from medseq.serving.recurrent import StreamingUnsupported
from medseq.serving.requests import RequestContext, RequestError, RequestUnavailable
from medseq.serving.service import IdempotencyConflict
from medseq.serving.update_caps import check_update

PatientIdPath = Annotated[str, PathParam(pattern=schemas.PATIENT_ID_PATTERN)]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _stream_state(request: Request, patient_id: str, stay) -> dict[str, Any]:
    state, bundle = stay.state, request.app.state.bundle
    threshold = bundle.threshold
    decision = None if threshold is None or bundle.task != "binary" else state.risk >= threshold
    return {
        "patient_id": patient_id,
        "model_version": request.app.state.version,
        "risk": state.risk,
        "decision": decision,
        "alert": state.alert,
        "n_observations": state.n_observations,
        "hours_covered": state.features.open_bin + 1 if state.n_observations else 0,
        "admission_time": stay.admission_time,
    }


def _stream(request: Request) -> Any:
    stream = request.app.state.stream
    if stream is None:
        raise RequestUnavailable(request.app.state.unavailable or "streaming is not available")
    return stream


def _history_for(request: Request, patient_id: str, obj: Any, stream: Any):
    state = request.app.state
    admission = state.pool.locked(stream.admission_time, patient_id)
    context = RequestContext(
        state.bundle.featurizer, task=state.served.task, now=_now(),
        max_future=timedelta(minutes=state.settings.max_future_minutes),
    )  # fmt: skip
    history, prefix = state.served.streaming.load().observations(
        obj, patient_id, admission, context
    )
    check_update(history, prefix)
    return history, prefix


async def observe(request: Request, patient_id: PatientIdPath) -> JSONResponse:
    """Add observations for one patient; answers after the new state is committed.

    The answer is a :class:`~medseq.serving.schemas.StreamUpdate` (the route's
    ``response_model``, for the OpenAPI document), built as a plain dict and rendered by
    ``JSONResponse``: the same bytes FastAPI's response-model validation and encoding
    gave, which cost about a tenth of a single-observation update.
    """
    stream = _stream(request)
    if stream.engine is None:
        raise StreamingUnsupported(stream.unsupported)
    key = _idempotency_key(request)
    raw = await request.body()
    small = len(raw) <= request.app.state.settings.inline_body_bytes
    pool, commits = request.app.state.pool, getattr(request.app.state, "commits", None)
    stage = commits is not None
    args = (request, patient_id, raw, stream, key, stage)
    body, counts, ticket = await pool.run_small(small, _observe, *args)
    if commits is not None and ticket is not None:  # group commit: answer once committed
        await commits.settle(ticket)
    if counts is not None:  # a retry answered from the stored record counts nothing twice
        metrics = request.app.state.metrics
        metrics.count_observations("applied", counts[0])
        metrics.count_observations("skipped", counts[1])
    return body


def _observe(
    request: Request, patient_id: str, raw: bytes, stream: Any, key: str | None, stage: bool
):
    """Parse, validate and apply one update (in the worker pool, off the event loop, but
    for a small body, :meth:`~medseq.serving.pool.WorkerPool.run_small`); with ``stage``
    its writes are staged for the group commit and the ticket to wait for is returned."""
    history, prefix = _history_for(request, patient_id, parse_json(raw), stream)
    if key is not None and history.update_id not in (None, key):
        raise RequestError.at(("body", "update_id"), "differs from the Idempotency-Key header")
    try:
        ack = request.app.state.pool.locked(stream.update, patient_id, history, key, stage)
    except ObservationError as err:
        origin = history.origins[err.index] if err.index >= 0 else None
        loc = (*prefix, origin, err.field) if origin is not None else ("body", err.field)
        raise RequestError.at(loc, str(err)) from None
    except IdempotencyConflict as err:
        raise HTTPException(409, str(err)) from None
    bundle = request.app.state.bundle
    threshold = bundle.threshold
    decision = None if threshold is None or bundle.task != "binary" else ack.risk >= threshold
    update = {  # schemas.StreamUpdate's fields, in its order (see observe)
        "patient_id": patient_id, "model_version": request.app.state.version,
        "risk": float(ack.risk), "decision": None if decision is None else bool(decision),
        "alert": bool(ack.alert), "n_observations": int(ack.n_observations),
        "hours_covered": int(ack.hours_covered), "admission_time": ack.admission_time,
        "n_applied": int(ack.n_applied),
        "skipped": [{"index": int(s["index"]), "code": str(s["code"]), "reason": str(s["reason"])}
                    for s in ack.skipped],
    }  # fmt: skip
    counts = None if ack.replayed else (ack.n_applied, len(ack.skipped))
    return JSONResponse(update), counts, ack.ticket


def _idempotency_key(request: Request) -> str | None:
    """The ``Idempotency-Key`` header (422 naming it when malformed), or None."""
    key = request.headers.get("idempotency-key")
    if key is not None and not re.fullmatch(schemas.IDEMPOTENCY_KEY_PATTERN, key):
        raise RequestError.at(
            ("header", "Idempotency-Key"),
            "must be 1-128 letters, digits, '.', '_', ':' or '-' (e.g. a UUID)",
        )
    return key


async def patient(request: Request, patient_id: PatientIdPath) -> schemas.StreamState:
    """The current state of an open stay (404 if none)."""
    stream = _stream(request)
    pool = request.app.state.pool
    stay = await pool.run(pool.locked, stream.get, patient_id)  # may read SQLite
    if stay is None:
        raise HTTPException(404, "no open stay for this patient")
    return schemas.StreamState(**_stream_state(request, patient_id, stay))


async def discharge(request: Request, patient_id: PatientIdPath) -> schemas.StreamState:
    """End a stay; answers its final state. The stored state and observations are deleted."""
    stream = _stream(request)
    pool = request.app.state.pool
    stay = await pool.run(pool.locked, stream.discharge, patient_id)
    if stay is None:
        raise HTTPException(404, "no open stay for this patient")
    return schemas.StreamState(**_stream_state(request, patient_id, stay))
