"""An unexpected exception is answered 500 once and logged without its message.

Starlette re-raises after its own 500 answer, and the server then logs the exception's text,
which can quote request content (issue 21: no request content in any log line).
"""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient

from medseq.serving.metrics import Metrics
from medseq.serving.middleware import ServingMiddleware

MARK = "PATIENT-7f3c-SECRET-VALUE-123.4"


async def _raising_app(scope, receive, send) -> None:
    raise ValueError(f"could not parse {MARK}")


def test_unexpected_error_is_a_500_without_the_message_in_any_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = ServingMiddleware(_raising_app, max_body_bytes=1 << 20, metrics=Metrics())
    with caplog.at_level(logging.DEBUG):
        response = TestClient(app, raise_server_exceptions=True).post("/v1/predict", json={})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
    text = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records)
    assert "internal error ValueError" in text
    assert MARK not in text
