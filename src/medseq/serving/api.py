"""The FastAPI service: prediction for any bundle, streaming where the dataset has it.

``create_app(bundle_dir, settings)`` only assembles; the bundle is loaded in the lifespan.
The service never names a dataset or a featurizer: it reads the bundle's dataset
(``provenance["dataset"]``) and asks that spec for what each route needs
(:mod:`medseq.serving.requests`). Routes (all but ``/healthz`` need
``Authorization: Bearer <token>``):

========  ====================================  ==========================================
POST      /v1/predict                           the dataset's JSON body (or a FHIR R4
                                                Bundle) -> probabilities, class names,
                                                threshold, model version
POST      /v1/patients/{patient_id}/observations  add observations, get updated risk+alert
GET       /v1/patients/{patient_id}             current state
DELETE    /v1/patients/{patient_id}             end the stay (state and rows deleted)
GET       /v1/model                             model card, metrics, request example
GET       /healthz                              liveness (no token)
GET       /metrics                              Prometheus text format (drift gauges too)
GET       /v1/drift                             drift of served inputs and predictions
                                                against the bundle's training profile
========  ====================================  ==========================================

``POST /v1/predict?coverage=0.9`` adds each item's conformal set or interval
(:mod:`medseq.serving.sets`); every predict request feeds the drift window
(:mod:`medseq.serving.drift_routes`).

The ``/v1/patients`` routes exist where the spec has a ``streaming`` part (ICU grids);
elsewhere they answer 404 with the spec's sentence saying why, also logged at start-up.
Bad input is answered 422 with ``detail: [{loc, msg, type}]`` naming the field (the
input value is not echoed); no bad input leads to a 500. A bundle whose featurizer needs a
module this install lacks (wfdb, scipy, RDKit) still starts; its predictions answer 503
naming the extra to install.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import traceback
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPBearer
from starlette.requests import ClientDisconnect

from medseq.serving import drift_routes, monitor_page, schemas, signal_routes
from medseq.serving.engine import AlertPolicy
from medseq.serving.group_commit import GroupCommit
from medseq.serving.inputs import parse_json
from medseq.serving.manifest import model_version, read_manifest
from medseq.serving.metrics import Metrics
from medseq.serving.middleware import ServingMiddleware
from medseq.serving.pool import WorkerPool
from medseq.serving.predict import answer, featurise
from medseq.serving.recurrent import StreamingUnsupported
from medseq.serving.requests import (
    RequestContext,
    RequestError,
    RequestUnavailable,
    capped,
    is_fhir_bundle,
)
from medseq.serving.sets import add_sets, requested
from medseq.serving.settings import ServeSettings
from medseq.serving.stream_routes import discharge, observe, patient

logger = logging.getLogger(__name__)
STREAM_STAGE = "streaming (/v1/patients/...)"


class Unauthorized(Exception):
    """No or an unknown bearer token."""


@dataclass(frozen=True)
class Served:
    """What the routes ask of the bundle's dataset, looked up once in :func:`create_app`.

    Attributes
    ----------
    spec : DatasetSpec
        The bundle's dataset (``provenance["dataset"]``).
    task : str
        The dataset task the bundle was trained for (``provenance["task"]``).
    streaming : object or None
        The spec's streaming part; None with ``refusal`` saying why.
    """

    spec: Any
    task: str
    streaming: Any
    refusal: str | None


def served_dataset(manifest: dict[str, Any], bundle_dir: Path) -> Served:
    """The bundle's dataset spec and its streaming part (or the sentence refusing it)."""
    from medseq.datasets import StageUnsupported, get_dataset

    provenance = manifest.get("provenance") or {}
    name = provenance.get("dataset")
    if not name:
        raise ValueError(
            f"{bundle_dir}: the bundle records no dataset (provenance['dataset']); "
            "retrain it with this medseq version so the service knows its request body"
        )
    spec = get_dataset(name)
    if provenance.get("task_definition"):  # a task written in the training config
        from medseq.tasks.spec import define_task

        define_task(name, str(provenance.get("task", "")), provenance["task_definition"])
    try:
        streaming, refusal = spec.require("streaming", STREAM_STAGE), None
    except StageUnsupported as err:
        streaming, refusal = None, str(err)
    return Served(spec, str(provenance.get("task", "")), streaming, refusal)


class _BearerCheck(HTTPBearer):
    """``HTTPBearer(auto_error=False)`` that also checks the token (401 otherwise).

    On the event loop: a plain ``def`` dependency is run in a worker thread, a thread
    hand-over for every request (a 1-s ECG chunk's answer included) for a comparison of a
    few bytes. One dependency, not a function depending on ``HTTPBearer``: a nested
    dependency is a second pass of FastAPI's solver on every request. Being an
    ``HTTPBearer``, it declares the same security scheme in the OpenAPI document.
    """

    async def __call__(self, request: Request) -> None:
        credentials = await super().__call__(request)
        tokens: tuple[str, ...] = request.app.state.settings.tokens
        given = credentials.credentials if credentials is not None else ""
        ok = any(hmac.compare_digest(given.encode(), t.encode()) for t in tokens)
        if credentials is None or credentials.scheme.lower() != "bearer" or not ok:
            raise Unauthorized()


_auth = _BearerCheck(auto_error=False, scheme_name="HTTPBearer")


def _load(bundle_dir: Path) -> tuple[Any, str | None]:
    """The bundle, or None and why (a module of an extra missing in this install)."""
    from medseq._imports import install_hint
    from medseq.bundle import load_bundle

    try:
        return load_bundle(bundle_dir), None
    except ModuleNotFoundError as err:
        return None, f"this bundle's featurizer needs {install_hint(err)}"


@asynccontextmanager
async def _lifespan(app: FastAPI):
    settings: ServeSettings = app.state.settings
    served: Served = app.state.served
    bundle, unavailable = _load(app.state.bundle_dir)
    app.state.bundle, app.state.unavailable = bundle, unavailable
    if unavailable:
        logger.error("%s; /v1/predict answers 503", unavailable)
    store, sweeper = None, None
    app.state.stream, app.state.commits = None, None
    if served.streaming is not None and bundle is not None:
        from medseq.serving.store import StateStore

        threshold = settings.alert_threshold
        if threshold is None:
            threshold = 0.5 if bundle.threshold is None else float(bundle.threshold)
        store = StateStore(settings.state_db, settings.synchronous)
        policy = AlertPolicy(
            threshold, settings.alert_hysteresis,
            settings.alert_onset_steps, settings.alert_clear_steps,
        )  # fmt: skip
        part = served.streaming.load()
        app.state.stream = part.open_service(
            bundle, app.state.version, store, policy,
            max_cached_patients=settings.max_cached_patients,
            warm_patients=settings.warm_patients,
        )  # fmt: skip
        if settings.group_commit and hasattr(app.state.stream, "flush"):
            commits = app.state.commits = GroupCommit(app.state.stream.flush)
            gauge = app.state.metrics.gauge
            gauge("medseq_group_commits", "Group commits so far.", lambda: commits.n_flushes)
            gauge("medseq_group_committed_updates", "Updates answered through them.",
                  lambda: commits.n_settled)  # fmt: skip
        app.state.metrics.gauge("medseq_active_patients", "Open streaming stays.", store.count)
        sweeper = _start_sweep(app.state.stream, settings)
    elif served.refusal:
        logger.warning("streaming routes disabled: %s", served.refusal)
    close_signals = signal_routes.open_signals(app)  # /v1/streams, where the spec has them
    monitor_page.attach(app)  # the live page's recent samples
    app.state.drift, app.state.drift_reason = drift_routes.open_monitor(bundle, settings.drift)
    if app.state.drift is None:
        logger.warning("drift monitoring disabled: %s", app.state.drift_reason)
    kind = app.state.manifest.get("model_config", {}).get("kind", "?")
    logger.info("serving model %s (%s, %s)", app.state.version, kind, served.spec.name)
    yield
    if close_signals is not None:
        close_signals()
    if sweeper is not None:
        sweeper.cancel()
    if store is not None:
        store.close()


def _start_sweep(stream: Any, settings: ServeSettings) -> asyncio.Task | None:
    """The periodic retention sweep (:func:`medseq.serving.service.sweep_forever`)."""
    if settings.retention_hours is None or not hasattr(stream, "sweep"):
        return None
    from medseq.serving.service import sweep_forever

    every = settings.retention_sweep_seconds
    return asyncio.create_task(sweep_forever(stream, settings.retention_hours, every))


def create_app(bundle_dir: str | Path, settings: ServeSettings) -> FastAPI:
    """The ASGI app serving the bundle in ``bundle_dir``; see the module doc.

    Raises
    ------
    ValueError
        The bundle is not readable or records no dataset (a clear refusal before start).
    """
    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    served = served_dataset(manifest, bundle_dir)
    app = FastAPI(title="medseq", version="1", lifespan=_lifespan)
    app.state.settings, app.state.bundle_dir = settings, bundle_dir
    app.state.manifest, app.state.version = manifest, model_version(manifest)
    app.state.served, app.state.metrics = served, Metrics()
    app.state.pool = WorkerPool(settings.worker_threads)
    app.state.drift, app.state.drift_reason = None, "the service has not started"
    app.state.metrics.section(lambda: drift_routes.prometheus_lines(app.state))
    _handlers(app)
    app.add_api_route("/healthz", healthz, methods=["GET"])
    secured = APIRouter(dependencies=[Depends(_auth)])
    secured.add_api_route("/metrics", metrics, methods=["GET"])
    secured.add_api_route("/v1/model", model_card, methods=["GET"])
    secured.add_api_route("/v1/drift", drift_routes.drift, methods=["GET"])
    secured.add_api_route(
        "/v1/predict", predict, methods=["POST"], response_model=schemas.PredictResponse,
        openapi_extra=_openapi_body(served),
    )  # fmt: skip
    if served.streaming is not None:
        secured.add_api_route(
            "/v1/patients/{patient_id}/observations", observe, methods=["POST"],
            response_model=schemas.StreamUpdate,
        )  # fmt: skip
        secured.add_api_route("/v1/patients/{patient_id}", patient, methods=["GET"])
        secured.add_api_route("/v1/patients/{patient_id}", discharge, methods=["DELETE"])
    else:
        methods = ["GET", "POST", "DELETE"]
        secured.add_api_route("/v1/patients/{rest:path}", no_streaming, methods=methods)
    signal_routes.mount(app, secured)
    monitor_page.mount(app, secured)  # GET /monitor, after the signal routes
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

    @app.exception_handler(RequestError)
    async def _input(request: Request, err: RequestError):
        return errors(422, err.errors)

    @app.exception_handler(RequestUnavailable)
    async def _unavailable(request: Request, err: RequestUnavailable):
        return errors(503, str(err))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, err: RequestValidationError):
        keep = [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in err.errors()]
        return errors(422, capped(keep))

    @app.exception_handler(StreamingUnsupported)
    async def _unsupported(request: Request, err: StreamingUnsupported):
        return errors(409, f"streaming is not available for this model: {err}")

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, err: ClientDisconnect):  # e.g. cut by body_timeout_s
        return errors(400, "the client closed the connection before the body was complete")

    @app.exception_handler(Exception)
    async def _internal(request: Request, err: Exception):
        frames = "".join(traceback.format_tb(err.__traceback__))
        logger.error("internal error %s\n%s", type(err).__name__, frames)
        return errors(500, "internal error")


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def healthz() -> dict[str, str]:
    """Liveness: the process answers (no token needed)."""
    return {"status": "ok"}


async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text format: request counts, latencies, active patients."""
    text = request.app.state.metrics.render()
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


async def no_streaming(request: Request, rest: str) -> None:
    """The streaming routes of a dataset without streaming: 404 with the spec's reason."""
    raise HTTPException(404, request.app.state.served.refusal)


async def model_card(request: Request) -> dict[str, Any]:
    """What is served: model config, inputs, threshold, metrics, provenance, request example."""
    state = request.app.state
    manifest, served = state.manifest, state.served
    card: dict[str, Any] = {
        "model_version": state.version,
        "medseq_version": manifest.get("medseq_version"),
        "dataset": served.spec.name,
        "task": manifest.get("task"),
        "threshold": manifest.get("threshold"),
        "class_names": manifest.get("class_names"),
        "model_config": manifest.get("model_config"),
        "n_members": manifest.get("n_members"),
        "featurizer": _featurizer_params(manifest["featurizer"]),
        "metrics": manifest.get("metrics"),
        "provenance": manifest.get("provenance"),
        "request": _request_doc(served.spec),
        "streaming": {"supported": False, "reason": served.refusal},
        "limits": {
            "max_body_bytes": state.settings.max_body_bytes,
            "max_items": schemas.MAX_PATIENTS,
            "max_events_per_patient": schemas.MAX_EVENTS,
            "max_observations_per_update": schemas.MAX_UPDATE,
        },
    }
    if state.unavailable:
        card["unavailable"] = state.unavailable
    if state.stream is not None:
        card.update(served.streaming.load().describe(state.bundle.featurizer))
        card["streaming"] = state.stream.describe()
    signals = getattr(state, "signals", None)
    card["signal_streaming"] = (
        signals.describe() if signals is not None
        else {"supported": False, "reason": getattr(state, "signal_refusal", None)}
    )  # fmt: skip
    return card


def _featurizer_params(state: dict[str, Any]) -> dict[str, Any]:
    """The featurizer's settings without its fitted arrays (which can be large)."""
    if "params" in state:
        return state["params"]
    return {k: v for k, v in state.items() if not isinstance(v, (list, dict))}


def _request_doc(spec: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for part in ("request", "fhir"):
        body = getattr(spec, part, None)
        if body is not None:
            doc[part] = {"modality": body.modality, "example": body.example}
    return doc


def _openapi_body(served: Served) -> dict[str, Any]:
    """The OpenAPI request body of ``/v1/predict``: this dataset's example bodies."""
    examples = {
        part: {"summary": f"{served.spec.name}: {body.modality} ({part})", "value": body.example}
        for part in ("request", "fhir")
        if (body := getattr(served.spec, part, None)) is not None and body.example
    }
    content = {"schema": {"type": "object"}, "examples": examples}
    return {"requestBody": {"required": True, "content": {"application/json": content}}}


async def predict(request: Request) -> dict[str, Any]:
    """Predictions for the items of the dataset's JSON body (or a FHIR R4 Bundle).

    The body is the bundle's dataset's (see ``GET /v1/model`` -> ``request`` and
    ``docs/serving.md``); the answer has one shape for every dataset and task.
    """
    return await _predict(request)


def _parts(served: Served, obj: Any) -> Any:
    from medseq.datasets import StageUnsupported

    fhir = is_fhir_bundle(obj)
    part = "fhir" if fhir else "request"
    stage = "POST /v1/predict with a FHIR Bundle" if fhir else "POST /v1/predict"
    try:
        return served.spec.require(part, stage)
    except StageUnsupported as err:
        loc = ("body", "resourceType") if fhir else ("body",)
        raise RequestError.at(loc, str(err), "unsupported") from None


async def _predict(request: Request) -> dict[str, Any]:
    state = request.app.state
    served: Served = state.served
    if state.bundle is None:
        raise RequestUnavailable(state.unavailable)
    coverage, mondrian = requested(request)
    raw = await request.body()
    context = RequestContext(
        state.bundle.featurizer, task=served.task, now=_now(),
        max_future=timedelta(minutes=state.settings.max_future_minutes),
        request_state=state.bundle.provenance.get("request_state") or {},
    )  # fmt: skip

    def run() -> dict[str, Any]:  # in the worker pool, off the event loop
        obj = parse_json(raw)
        parsed = _parts(served, obj).parse(obj, context)
        arrays = featurise(served.spec, state.bundle, parsed)
        scores = state.bundle.predict_arrays(arrays)
        out = answer(state.bundle, served.task, scores, parsed)
        if coverage is not None:
            add_sets(out, state.bundle, scores, coverage, mondrian)
        drift_routes.observe(state, arrays, scores)
        return out

    out = await state.pool.run(run)
    used = sum(p.get("n_events_used") or 0 for p in out["predictions"])
    state.metrics.count_observations("batch", used)
    return {"model_version": state.version, **out}
