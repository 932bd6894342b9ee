"""Run the service with uvicorn on a host and port (``medseq serve``)."""

from __future__ import annotations

import logging
from pathlib import Path

from medseq.serving.settings import ServeSettings

logger = logging.getLogger(__name__)


def serve(bundle_dir: str | Path, settings: ServeSettings, host: str, port: int) -> None:
    """Serve ``bundle_dir`` until interrupted.

    One worker process: the streaming states live in that process (and in SQLite), and a
    second worker would hold a second, diverging copy. uvicorn's access log is off because
    it prints concrete paths, which hold patient identifiers; medseq's own access log
    (``medseq.serving.access``) names route templates only.
    """
    import uvicorn

    from medseq.serving.api import create_app

    app = create_app(bundle_dir, settings)
    logger.info("medseq serve on http://%s:%d (state: %s)", host, port, settings.state_db)
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning", workers=1)
