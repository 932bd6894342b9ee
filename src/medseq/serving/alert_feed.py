"""The live alert feed behind the Server-Sent Events routes.

Alerts are committed by worker threads (:mod:`medseq.serving.signal_service`) and
followed by browsers on the event loop. :class:`AlertFeed` hands each committed alert to
every subscriber's bounded queue with ``loop.call_soon_threadsafe``. A subscriber that
falls ``queue_size`` alerts behind is closed rather than let grow without bound (or
slow the writers): its stream ends, and the browser's ``EventSource`` reconnects with
``Last-Event-ID``, from where the route replays the stored alerts. Nothing is lost, and
memory stays bounded whatever the clients do.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field
from typing import Any

#: The queue item that ends a subscription (lagging subscriber, or shutdown).
CLOSED: dict[str, Any] = {"closed": True}


@dataclass(eq=False)
class Subscription:
    """One follower: alerts of ``stream_id`` (None: all streams) arrive in ``queue``."""

    stream_id: str | None
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=256))
    closed: bool = False


class AlertFeed:
    """Subscribers and the publication of committed alerts to them."""

    def __init__(self, queue_size: int = 256) -> None:
        self.queue_size = queue_size
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()

    def subscribe(self, stream_id: str | None) -> Subscription:
        """A new subscription (call on the event loop)."""
        sub = Subscription(stream_id, asyncio.get_running_loop(), asyncio.Queue(self.queue_size))
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def count(self) -> int:
        with self._lock:
            return len(self._subs)

    def publish(self, alerts: list[dict[str, Any]]) -> None:
        """Hand ``alerts`` (each with ``stream_id`` and ``id``) to the subscribers (any thread)."""
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            mine = [a for a in alerts if sub.stream_id in (None, a["stream_id"])]
            if mine and not sub.closed:
                try:
                    sub.loop.call_soon_threadsafe(_offer, sub, mine)
                except RuntimeError:  # the loop is closed: the server is stopping
                    self.unsubscribe(sub)

    def close(self) -> None:
        """End every subscription (shutdown)."""
        with self._lock:
            subs, self._subs = list(self._subs), set()
        for sub in subs:
            with contextlib.suppress(RuntimeError):  # the loop is closed already
                sub.loop.call_soon_threadsafe(_offer, sub, [CLOSED])


def _offer(sub: Subscription, items: list[dict[str, Any]]) -> None:
    """On the subscriber's loop: queue ``items``; a full queue closes the subscription."""
    if sub.closed:
        return
    for item in items:
        if item is CLOSED or sub.queue.full():
            sub.closed = True
            while not sub.queue.empty():  # make room for the end marker
                sub.queue.get_nowait()
            sub.queue.put_nowait(CLOSED)
            return
        sub.queue.put_nowait(item)
