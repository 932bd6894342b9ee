"""Run the service with uvicorn on a host and port (``medseq serve``)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from medseq.serving.settings import ServeSettings

logger = logging.getLogger(__name__)


def serve(bundle_dir: str | Path, settings: ServeSettings, host: str, port: int) -> None:
    """Serve ``bundle_dir`` until interrupted.

    One worker process: the streaming states live in that process (and in SQLite), and a
    second worker would hold a second, diverging copy. uvicorn's access log is off because
    it prints concrete paths, which hold patient identifiers; medseq's own access log
    (``medseq.serving.access``) names route templates only. Connections are capped and
    slow headers and bodies cut (:mod:`medseq.serving.protocol`).
    """
    import uvicorn

    from medseq.serving.api import create_app

    app = create_app(bundle_dir, settings)
    # the event loop waits at most this long for the GIL held by a worker thread (default
    # 5 ms); /healthz and small updates need it several times per request
    sys.setswitchinterval(0.001)
    logger.info("medseq serve on http://%s:%d (state: %s)", host, port, settings.state_db)
    uvicorn.Server(uvicorn_config(app, settings, host, port)).run()


def uvicorn_config(app: Any, settings: ServeSettings, host: str, port: int) -> Any:
    """The ``uvicorn.Config`` of :func:`serve`: one worker, no access log, guarded protocol."""
    import uvicorn

    from medseq.serving.protocol import ConnectionLimits, default_protocol, guarded_protocol

    limits = ConnectionLimits(
        settings.max_connections, settings.header_timeout_s, settings.body_timeout_s
    )
    return uvicorn.Config(
        app, host=host, port=port, access_log=False, log_level="warning", workers=1,
        http=guarded_protocol(default_protocol(), limits),
        timeout_keep_alive=max(1, round(settings.keep_alive_s)),
    )  # fmt: skip
