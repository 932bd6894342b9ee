"""The bounded worker pool: request work off the event loop.

Parsing a body, validating it (pydantic, ``fhir.resources``), featurising and running the
model are CPU work; on the event loop, an 8 MB body held every other request, ``/healthz``
included, for the 4-5 s it took. The routes hand that work to :meth:`WorkerPool.run`: a
thread from anyio's pool, at most ``worker_threads`` at once (a
:class:`anyio.CapacityLimiter`, so a burst of large bodies queues instead of starting
hundreds of threads). The event loop keeps reading, answering ``/healthz`` and queueing.

The open streaming stays are shared by the threads; :attr:`WorkerPool.state_lock`
serialises every read and write of them (one update of one patient at a time, as on the
event loop before), while the parsing of other requests goes on in parallel. A streaming
update of at most ``inline_body_bytes`` (4 KiB, some 60 observations) is applied on the
event loop when the lock is free (:meth:`WorkerPool.run_small`): its work is shorter than
the hand-over to a thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")


class WorkerPool:
    """At most ``n_threads`` blocking calls at once, in threads.

    Parameters
    ----------
    n_threads : int
        Size of the pool (``ServeSettings.worker_threads``).
    """

    def __init__(self, n_threads: int) -> None:
        if n_threads < 1:
            raise ValueError(f"worker_threads must be >= 1, got {n_threads}")
        self.n_threads = n_threads
        self.limiter = anyio.CapacityLimiter(n_threads)
        self.state_lock = threading.RLock()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a pool thread; its exception is raised here."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    async def run_small(self, small: bool, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the event loop when ``small`` and the state lock is free at once,
        else :meth:`run`.

        A small streaming update (``ServeSettings.inline_body_bytes``, a few observations)
        is less work than the two thread switches of the pool, and on a busy machine each
        switch waits for a scheduler slice; it never waits for the lock on the loop.
        """
        if small and self.state_lock.acquire(blocking=False):
            try:
                return fn(*args)
            finally:
                self.state_lock.release()
        return await self.run(fn, *args)

    def locked(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` holding :attr:`state_lock` (call it from a pool thread)."""
        with self.state_lock:
            return fn(*args)
