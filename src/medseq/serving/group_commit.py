"""Group commit: the streaming updates of one turn of the event loop share one SQLite commit.

Each update used to end in its own transaction, and the commit was the largest part of a
single-observation update (``benchmarks/results/serving.md``, "Group commit"): the pages
shared by every patient (the observation table and its index, the sequence counter) were
written to the WAL once per update, and the WAL checkpoint ran every ~100 updates.

With group commit an update is applied to the patient's state and its writes are staged
(:meth:`~medseq.serving.store.StateStore.stage`); its request then waits in
:meth:`GroupCommit.settle`. The first waiter of a turn schedules one flush with
``loop.call_soon``, so it runs after the requests whose bytes arrived in the same turn have
staged theirs; the flush commits them all in one transaction and wakes them. Durability is
unchanged: **no update is answered before the commit holding it has returned** (a request
whose commit failed is answered 500 and its patient's state is reloaded from the store),
so killing the process loses no acknowledged observation; a staged write that a kill cut
before its commit was never answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class CommitFailed(RuntimeError):
    """A commit of staged writes failed and was rolled back; ``patient_ids`` were in it."""

    def __init__(self, patient_ids: list[str]) -> None:
        super().__init__(f"state commit failed for {len(patient_ids)} patient(s); rolled back")
        self.patient_ids = patient_ids


class CommitTicket:
    """The fate of one staged write: ``done`` once a flush settled it, ``error`` (a
    :class:`CommitFailed`) if that flush was rolled back."""

    __slots__ = ("done", "error", "patient_id")

    def __init__(self, patient_id: str) -> None:
        self.patient_id = patient_id
        self.done = False
        self.error: CommitFailed | None = None


class GroupCommit:
    """Waits of requests for their staged writes, one flush per event-loop turn.

    Parameters
    ----------
    flush : callable
        Commits everything staged and settles the tickets
        (:meth:`medseq.serving.service.StreamService.flush`); runs on the event loop.
    """

    def __init__(self, flush: Callable[[], object]) -> None:
        self._flush = flush
        self._waiting: list[asyncio.Future[None]] = []
        #: flushes run and requests answered through them (for tests and the benchmark)
        self.n_flushes = 0
        self.n_settled = 0

    async def settle(self, ticket: CommitTicket) -> None:
        """Return once ``ticket``'s write is committed; raise its error if it was rolled
        back. A write that another flush committed meanwhile (a read, a worker thread's
        update) returns at once."""
        if not ticket.done:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            self._waiting.append(future)
            if len(self._waiting) == 1:
                loop.call_soon(self._run)
            await future
        if ticket.error is not None:
            raise ticket.error

    def _run(self) -> None:
        waiting, self._waiting = self._waiting, []
        self.n_flushes += 1
        self.n_settled += len(waiting)
        try:
            self._flush()
        except Exception as err:  # not a failed commit (its tickets carry that): wake all
            for future in waiting:
                if not future.done():
                    future.set_exception(err)
            return
        for future in waiting:
            if not future.done():  # a cancelled request (client gone) is done already
                future.set_result(None)
