"""The FastAPI service: batch prediction, streaming updates, model card, health, metrics.

``create_app(bundle_dir, settings)`` only assembles; the bundle is loaded in the lifespan.
Routes (all but ``/healthz`` need ``Authorization: Bearer <token>``):

========  ====================================  ==========================================
POST      /v1/predict                           histories (event-table JSON or FHIR
                                                Bundle) -> risk, decision, model version
POST      /v1/patients/{patient_id}/observations  add observations, get updated risk+alert
GET       /v1/patients/{patient_id}             current state
DELETE    /v1/patients/{patient_id}             end the stay (state and rows deleted)
GET       /v1/model                             model card and metrics
GET       /healthz                              liveness (no token)
GET       /metrics                              Prometheus text format
========  ====================================  ==========================================

Bad input is answered 422 with ``detail: [{loc, msg, type}]`` naming the field (the
input value is not echoed); no bad input leads to a 500.
"""

from __future__ import annotations

import hmac
import logging
import traceback
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from medseq.serving import schemas
from medseq.serving.batch import predict_histories
from medseq.serving.codes import CodeTable
from medseq.serving.engine import AlertPolicy, ObservationError
from medseq.serving.fhir import histories_from_bundle, is_fhir_bundle
from medseq.serving.inputs import InputError, history_from_events, parse_json, validate
from medseq.serving.manifest import model_version, read_manifest
from medseq.serving.metrics import Metrics
from medseq.serving.middleware import ServingMiddleware
from medseq.serving.recurrent import StreamingUnsupported
from medseq.serving.settings import ServeSettings

logger = logging.getLogger(__name__)
PatientIdPath = Annotated[str, PathParam(pattern=schemas.PATIENT_ID_PATTERN)]
_bearer = HTTPBearer(auto_error=False)


class Unauthorized(Exception):
    """No or an unknown bearer token."""


def _auth(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    tokens: tuple[str, ...] = request.app.state.settings.tokens
    given = credentials.credentials if credentials is not None else ""
    ok = any(hmac.compare_digest(given.encode(), t.encode()) for t in tokens)
    if credentials is None or credentials.scheme.lower() != "bearer" or not ok:
        raise Unauthorized()


@asynccontextmanager
async def _lifespan(app: FastAPI):
    from medseq.bundle import load_bundle
    from medseq.serving.service import StreamService
    from medseq.serving.store import StateStore

    settings: ServeSettings = app.state.settings
    bundle_dir = app.state.bundle_dir
    manifest = read_manifest(bundle_dir)
    bundle = load_bundle(bundle_dir)
    version = model_version(manifest)
    threshold = settings.alert_threshold
    if threshold is None:
        threshold = 0.5 if bundle.threshold is None else float(bundle.threshold)
    store = StateStore(settings.state_db, settings.synchronous)
    app.state.bundle, app.state.manifest, app.state.version = bundle, manifest, version
    app.state.codes = CodeTable.load()
    app.state.stream = StreamService(
        bundle, version, store, AlertPolicy(threshold, settings.alert_hysteresis)
    )
    app.state.metrics.gauge("medseq_active_patients", "Open streaming stays.", store.count)
    logger.info("serving model %s (%s)", version, bundle.model_config.kind)
    yield
    store.close()


def create_app(bundle_dir: str | Path, settings: ServeSettings) -> FastAPI:
    """The ASGI app serving the bundle in ``bundle_dir``; see the module doc."""
    app = FastAPI(title="medseq", version="1", lifespan=_lifespan)
    app.state.settings, app.state.bundle_dir = settings, Path(bundle_dir)
    app.state.metrics = Metrics()
    _handlers(app)
    app.add_api_route("/healthz", healthz, methods=["GET"])
    secured = APIRouter(dependencies=[Depends(_auth)])
    secured.add_api_route("/metrics", metrics, methods=["GET"])
    secured.add_api_route("/v1/model", model_card, methods=["GET"])
    secured.add_api_route("/v1/predict", predict, methods=["POST"])
    secured.add_api_route("/v1/patients/{patient_id}/observations", observe, methods=["POST"])
    secured.add_api_route("/v1/patients/{patient_id}", patient, methods=["GET"])
    secured.add_api_route("/v1/patients/{patient_id}", discharge, methods=["DELETE"])
    app.include_router(secured)
    app.add_middleware(
        ServingMiddleware, max_body_bytes=settings.max_body_bytes, metrics=app.state.metrics
    )
    return app


def _handlers(app: FastAPI) -> None:
    def errors(status: int, detail: Any, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    @app.exception_handler(Unauthorized)
    async def _unauthorized(request: Request, err: Unauthorized):
        headers = {"WWW-Authenticate": "Bearer"}
        return errors(401, "missing or invalid bearer token", headers)

    @app.exception_handler(InputError)
    async def _input(request: Request, err: InputError):
        return errors(422, err.errors)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, err: RequestValidationError):
        keep = [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in err.errors()]
        return errors(422, keep)

    @app.exception_handler(StreamingUnsupported)
    async def _unsupported(request: Request, err: StreamingUnsupported):
        return errors(409, f"streaming is not available for this model: {err}")

    @app.exception_handler(Exception)
    async def _internal(request: Request, err: Exception):
        frames = "".join(traceback.format_tb(err.__traceback__))
        logger.error("internal error %s\n%s", type(err).__name__, frames)
        return errors(500, "internal error")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _skipped(items: list[dict]) -> list[schemas.Skipped]:
    return [schemas.Skipped(**s) for s in items]


async def healthz() -> dict[str, str]:
    """Liveness: the process answers (no token needed)."""
    return {"status": "ok"}


async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text format: request counts, latencies, active patients."""
    text = request.app.state.metrics.render()
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


async def model_card(request: Request) -> dict[str, Any]:
    """What is served: model config, features, codes, threshold, metrics, provenance."""
    state = request.app.state
    bundle, manifest = state.bundle, state.manifest
    return {
        "model_version": state.version,
        "medseq_version": manifest.get("medseq_version"),
        "task": bundle.task,
        "threshold": bundle.threshold,
        "model_config": bundle.model_config.to_dict(),
        "n_members": len(bundle.members),
        "featurizer": manifest["featurizer"]["params"],
        "variables": bundle.featurizer.feature_names_,
        "static_columns": list(bundle.featurizer.static_encoder_.columns),
        "codes": state.codes.describe(),
        "metrics": bundle.metrics,
        "provenance": bundle.provenance,
        "streaming": state.stream.describe(),
        "limits": {
            "max_body_bytes": state.settings.max_body_bytes,
            "max_patients": schemas.MAX_PATIENTS,
            "max_events_per_patient": schemas.MAX_EVENTS,
            "max_observations_per_update": schemas.MAX_UPDATE,
        },
    }


async def predict(request: Request) -> schemas.PredictResponse:
    """Risk for one or many patients' histories (event-table JSON or FHIR R4 Bundle)."""
    state = request.app.state
    obj = parse_json(await request.body())
    if is_fhir_bundle(obj):
        future = timedelta(minutes=state.settings.max_future_minutes)
        parsed = histories_from_bundle(obj, state.codes, now=_now(), max_future=future)
        histories = list(parsed.values())
        if not histories:
            raise InputError.at(("body", "entry"), "the Bundle holds no Observation")
        if len(histories) > schemas.MAX_PATIENTS:
            raise InputError.at(("body", "entry"), f"more than {schemas.MAX_PATIENTS} patients")
    else:
        body = validate(schemas.PredictRequest, obj)
        histories = [
            history_from_events(p.patient_id, p.events, p.static, state.codes)
            for p in body.patients
        ]
        ids = [h.patient_id for h in histories]
        if len(set(ids)) != len(ids):
            raise InputError.at(("body", "patients"), "patient_id values must be distinct")
    results = await run_in_threadpool(predict_histories, state.bundle, histories)
    state.metrics.count_observations("batch", sum(r["n_events_used"] for r in results))
    return schemas.PredictResponse(
        model_version=state.version,
        threshold=state.bundle.threshold,
        predictions=[schemas.Prediction(**r) for r in results],
    )


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


def _history_for(request: Request, patient_id: str, obj: Any, stream):
    state = request.app.state
    if is_fhir_bundle(obj):
        stay = stream.get(patient_id)
        admission = None
        if stay is not None and stay.admission_time is not None:
            admission = datetime.fromisoformat(stay.admission_time)
        future = timedelta(minutes=state.settings.max_future_minutes)
        parsed = histories_from_bundle(
            obj, state.codes, now=_now(), max_future=future,
            patient_id=patient_id, admission=admission,
        )  # fmt: skip
        return parsed[patient_id], ("body", "entry")
    body = validate(schemas.ObservationsIn, obj)
    return history_from_events(patient_id, body.observations, body.static, state.codes), (
        "body",
        "observations",
    )


async def observe(request: Request, patient_id: PatientIdPath) -> schemas.StreamUpdate:
    """Add observations for one patient; answers after the new state is committed."""
    stream = request.app.state.stream
    if stream.engine is None:
        raise StreamingUnsupported(stream.unsupported)
    obj = parse_json(await request.body())
    history, prefix = _history_for(request, patient_id, obj, stream)
    try:
        stay, result = stream.update(patient_id, history)
    except ObservationError as err:
        origin = history.origins[err.index] if err.index >= 0 else None
        loc = (*prefix, origin, err.field) if origin is not None else ("body", err.field)
        raise InputError.at(loc, str(err)) from None
    skipped = history.skipped + [
        {**s, "index": history.origins[s["index"]]} for s in result.skipped
    ]
    metrics = request.app.state.metrics
    metrics.count_observations("applied", result.n_applied)
    metrics.count_observations("skipped", len(skipped))
    body = _stream_state(request, patient_id, stay)
    return schemas.StreamUpdate(**body, n_applied=result.n_applied, skipped=_skipped(skipped))


async def patient(request: Request, patient_id: PatientIdPath) -> schemas.StreamState:
    """The current state of an open stay (404 if none)."""
    stay = request.app.state.stream.get(patient_id)
    if stay is None:
        raise HTTPException(404, "no open stay for this patient")
    return schemas.StreamState(**_stream_state(request, patient_id, stay))


async def discharge(request: Request, patient_id: PatientIdPath) -> schemas.StreamState:
    """End a stay; answers its final state. The stored state and observations are deleted."""
    stay = request.app.state.stream.discharge(patient_id)
    if stay is None:
        raise HTTPException(404, "no open stay for this patient")
    return schemas.StreamState(**_stream_state(request, patient_id, stay))
