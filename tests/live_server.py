"""``medseq serve``'s uvicorn server in a thread of the test process, for the tests that
need a real socket (timeouts, connection limits, a browser); shared by tests/unit/serving
and tests/integration. A module of its own name, so that either folder can import it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medseq.serving.api import create_app
from medseq.serving.server import uvicorn_config
from medseq.serving.settings import ServeSettings


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(bundle_dir: Path | str, settings: ServeSettings) -> Iterator[int]:
    """``medseq serve``'s uvicorn configuration, in a thread; yields the port."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn_config(create_app(bundle_dir, settings), settings, "127.0.0.1", port)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(30)
