"""The WAL checkpoint of the state store, in a thread of its own (see :class:`WalCheckpointer`)."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading

logger = logging.getLogger(__name__)


class WalCheckpointer:
    """Copies the WAL into the database from a thread and connection of its own.

    SQLite's automatic checkpoint runs inside the commit that finds the WAL over 1000
    pages, and with ``synchronous=NORMAL`` a checkpoint is where the fsyncs are: every
    hundred or so updates one commit, and the event loop committing it, waited for the
    disk (``benchmarks/results/serving.md``, "Cheaper single-observation updates"). Here
    the store's connection does not checkpoint (``wal_autocheckpoint=0``) and this thread
    runs the same checkpoint, ``PASSIVE`` (it never blocks a writer), once the WAL is over
    the same size. Durability is unchanged: a commit is in the WAL when it returns, as
    before; the explicit ``TRUNCATE`` checkpoints of :meth:`StateStore.checkpoint` (after
    deletes) stay on the store's connection.

    Parameters
    ----------
    path : str
        The database file.
    max_wal_bytes : int, default=4 MiB
        Checkpoint once the WAL is larger (SQLite's default: 1000 pages of 4 KiB).
    poll_s : float, default=0.1
        How often the WAL's size is looked at.
    """

    def __init__(self, path: str, max_wal_bytes: int = 4 << 20, poll_s: float = 0.1) -> None:
        self.path, self.max_wal_bytes, self.poll_s = path, max_wal_bytes, poll_s
        self.n_checkpoints = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="medseq-wal-checkpoint",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def _run(self) -> None:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=5000")
            while not self._stop.wait(self.poll_s):
                try:
                    wal_bytes = os.path.getsize(self.path + "-wal")
                except FileNotFoundError:  # no WAL now; gone with its database: stop
                    if not os.path.exists(self.path):
                        return
                    continue
                try:
                    if wal_bytes > self.max_wal_bytes:
                        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                        self.n_checkpoints += 1
                except (OSError, sqlite3.Error) as err:  # retried at the next poll
                    logger.warning("state store: background checkpoint failed (%s)",
                                   type(err).__name__)  # fmt: skip
        finally:
            db.close()

    def close(self) -> None:
        """Stop the thread (after its checkpoint in progress, if any)."""
        self._stop.set()
        self._thread.join(30)
