"""ASGI middleware: request size limit, metrics and an access log without patient data.

The access log names the route *template* (``/v1/patients/{patient_id}``), never the
concrete path, so no patient identifier reaches the logs; bodies are never logged.
(uvicorn's own access log, which prints concrete paths, is switched off by
:func:`medseq.serving.server.serve`.)
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from typing import Any

from medseq.serving.metrics import Metrics

logger = logging.getLogger("medseq.serving.access")
error_logger = logging.getLogger("medseq.serving.api")


class BodyTooLarge(Exception):
    """The request body exceeded the limit while being read."""


def route_template(scope: dict[str, Any]) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


async def _send_json(send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class ServingMiddleware:
    """Refuse bodies over ``max_body_bytes`` (413), time and count every request.

    Parameters
    ----------
    app : ASGI app
    max_body_bytes : int
    metrics : Metrics
    """

    def __init__(self, app, max_body_bytes: int, metrics: Metrics) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500, "started": False}

        async def send_wrapper(message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
            await send(message)

        try:
            if self._declared_too_large(scope):
                status["code"] = 413
                await _send_json(send, 413, self._too_large())
            else:
                await self.app(scope, self._limited(receive), send_wrapper)
        except BodyTooLarge:
            status["code"] = 413
            if not status["started"]:
                await _send_json(send, 413, self._too_large())
        except Exception as err:  # answered here and, on purpose, not re-raised
            # Starlette's error middleware would answer 500 too, but then re-raise, and the
            # server's own log line would carry the exception's message, which can quote the
            # request (a value, an id): only the type and the frames are logged.
            status["code"] = 500
            frames = "".join(traceback.format_tb(err.__traceback__))
            error_logger.error("internal error %s\n%s", type(err).__name__, frames)
            if not status["started"]:
                await _send_json(send, 500, {"detail": "internal error"})
        finally:
            self._record(scope, status["code"], time.perf_counter() - start)

    def _too_large(self) -> dict[str, Any]:
        return {"detail": f"request body larger than {self.max_body_bytes} bytes"}

    def _declared_too_large(self, scope) -> bool:
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    return int(value) > self.max_body_bytes
                except ValueError:
                    return True
        return False

    def _limited(self, receive):
        seen = 0

        async def wrapped():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise BodyTooLarge()
            return message

        return wrapped

    def _record(self, scope, status: int, seconds: float) -> None:
        route = route_template(scope)
        self.metrics.observe_request(route, scope["method"], status, seconds)
        logger.info("%s %s %d %.1f ms", scope["method"], route, status, seconds * 1e3)
