"""uvicorn's HTTP protocol with a connection cap and header and body deadlines.

uvicorn (0.2x-0.4x) has no header or body timeout, and its ``limit_concurrency`` answers
503 only once a request's headers are complete: 3,000 connections that never finished
their headers all stayed open. :func:`guarded_protocol` subclasses uvicorn's protocol class
(httptools or h11, whichever uvicorn picked) so that

* a connection beyond ``max_connections`` open ones is answered ``503`` and closed at once;
* a request whose headers are not complete ``header_timeout_s`` after its first byte (or
  after the connection opened) is closed;
* a request whose body is not complete ``body_timeout_s`` after its headers is closed (the
  route sees a client disconnect, answered 400 and not logged as an error).

Idle keep-alive connections are closed by uvicorn's own ``timeout_keep_alive``
(``keep_alive_s``). Both protocol classes expose the request in progress as ``cycle``
(created when the headers are complete; ``more_body`` false once the body is complete), which
is all this module reads of them. In production put a reverse proxy in front as well
(``docs/serving.md``): it buffers slow clients before they reach the service.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

_BUSY_BODY = b'{"detail": "too many open connections, retry later"}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


@dataclass(frozen=True)
class ConnectionLimits:
    """The limits of :func:`guarded_protocol` (from :class:`~.settings.ServeSettings`)."""

    max_connections: int
    header_timeout_s: float
    body_timeout_s: float


class _Guard:
    """Mixin over a uvicorn HTTP protocol class; see the module doc."""

    limits: ConnectionLimits
    n_refused = 0  # connections refused by this process (all servers)
    # provided by the uvicorn protocol class
    connections: set[Any]
    cycle: Any
    loop: asyncio.AbstractEventLoop

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._timer: asyncio.TimerHandle | None = None
        self._watched: Any = None
        self._phase: str | None = None
        if len(self.connections) > self.limits.max_connections:
            _Guard.n_refused += 1
            if _Guard.n_refused % 1000 == 1:  # a flood of them must not flood the log
                logger.warning(
                    "connection refused: %d open (max_connections); %d refused so far",
                    len(self.connections) - 1, _Guard.n_refused,
                )  # fmt: skip
            transport.write(_BUSY)
            transport.close()
            return
        self._arm("headers", self.limits.header_timeout_s)

    def data_received(self, data: bytes) -> None:
        idle = self.cycle is None or self.cycle.response_complete
        before = self.cycle
        super().data_received(data)  # type: ignore[misc]
        cycle = self.cycle
        if cycle is not before and cycle is not None:  # a request's headers completed
            if cycle.more_body:
                self._arm("body", self.limits.body_timeout_s)
            else:
                self._disarm()
        elif self._phase == "body" and cycle is not None and not cycle.more_body:
            self._disarm()
        elif self._phase is None and idle and cycle is before:  # next request's first bytes
            self._arm("headers", self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm(self, phase: str, seconds: float) -> None:
        self._disarm()
        self._phase, self._watched = phase, self.cycle
        self._timer = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        timer = getattr(self, "_timer", None)
        if timer is not None:
            timer.cancel()
        self._timer, self._phase = None, None

    def _expire(self) -> None:
        phase, cycle = self._phase, self.cycle
        self._timer, self._phase = None, None
        late = (phase == "headers" and cycle is self._watched) or (
            phase == "body" and cycle is self._watched and cycle is not None and cycle.more_body
        )
        transport = getattr(self, "transport", None)
        if late and transport is not None and not transport.is_closing():
            logger.info("connection closed: request %s not complete in time", phase)
            transport.close()


def guarded_protocol(base: type[asyncio.Protocol], limits: ConnectionLimits) -> type:
    """A subclass of uvicorn's protocol class ``base`` enforcing ``limits``."""
    return type(f"Guarded{base.__name__}", (_Guard, base), {"limits": limits})


def default_protocol() -> type[asyncio.Protocol]:
    """The HTTP protocol class uvicorn would choose (httptools if installed, else h11)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    except ImportError:  # httptools is optional in uvicorn
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol
