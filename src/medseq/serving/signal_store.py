"""Signal streams in the service's SQLite state store: chunk log, checkpoints, acks, alerts.

:class:`SignalStore` is the ICU :class:`~medseq.serving.store.StateStore` (same file
format, 0600 files, WAL, ``secure_delete``, WAL truncated after a delete, one connection
behind one lock) with four more tables:

``signal_streams``
    one row per open stream: sampling rate, lead, the clock's origin (``start_time``),
    the next expected sample, the last chunk's sequence number, a JSON summary (last beat,
    quality, open episodes) and the sequence number of the chunk its checkpoint includes.
``signal_checkpoints``
    the latest detector checkpoint of each stream (:mod:`medseq.serving.signal_state`,
    about 80 KB). In a table of its own because SQLite rewrites a whole row on every
    update: in the stream's row, every chunk rewrote the checkpoint too (with
    ``secure_delete`` its old pages zeroed as well), about 190 KB of WAL per chunk instead
    of about 8 KB. Files of earlier versions, which kept it in ``signal_streams``
    (``checkpoint_state``, ``checkpoint_arrays``, now always NULL), are moved over when
    opened.
``signal_chunks``
    every acknowledged chunk since that checkpoint (start index, float64 samples). A
    stream is restored as checkpoint + replay of these chunks, so a chunk is durable the
    moment it is acknowledged, while a checkpoint (about 80 KB) is written only every
    ``checkpoint_every`` chunks; chunks a checkpoint includes are deleted with it.
``signal_acks``
    the acknowledgement of each recent chunk under its idempotency key, with a hash of its
    content: a retry is answered the same, other content under the key is a conflict.
``signal_alerts``
    every alert, numbered across streams (the SSE event id, so a client that reconnects
    with ``Last-Event-ID`` misses nothing).

A chunk's rows (chunk, ack, alerts, stream row, and a checkpoint when due) are written in
one transaction before the answer is sent: ``kill -9`` loses no acknowledged chunk.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from medseq.serving.store import StateStore

_SIGNAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS signal_streams (
    stream_id TEXT PRIMARY KEY,
    model_version TEXT NOT NULL,
    fs_hz REAL NOT NULL,
    lead TEXT NOT NULL,
    start_time TEXT,
    next_sample INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    summary TEXT NOT NULL,
    checkpoint_seq INTEGER NOT NULL,
    checkpoint_state TEXT,
    checkpoint_arrays BLOB,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS signal_chunks (
    stream_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    start INTEGER NOT NULL,
    samples BLOB NOT NULL,
    PRIMARY KEY (stream_id, seq)
);
CREATE TABLE IF NOT EXISTS signal_acks (
    stream_id TEXT NOT NULL,
    key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    ack TEXT NOT NULL,
    PRIMARY KEY (stream_id, key)
);
CREATE INDEX IF NOT EXISTS signal_acks_seq ON signal_acks (stream_id, seq);
CREATE TABLE IF NOT EXISTS signal_alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id TEXT NOT NULL,
    alert TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS signal_alerts_stream ON signal_alerts (stream_id, id);
CREATE TABLE IF NOT EXISTS signal_checkpoints (
    stream_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    arrays BLOB NOT NULL
);
"""
_STREAM_TABLES = (
    "signal_streams", "signal_chunks", "signal_acks", "signal_alerts", "signal_checkpoints",
)  # fmt: skip
#: Answers are stored and sent as these bytes (those of FastAPI's ``JSONResponse``).
_JSON = {"ensure_ascii": False, "allow_nan": False, "indent": None, "separators": (",", ":")}


def encode_json(value: Any) -> str:
    """``value`` as the JSON text an answer carries (compact, as ``JSONResponse``)."""
    return json.dumps(value, **_JSON)  # type: ignore[arg-type]


@dataclass
class StoredStream:
    """A ``signal_streams`` row and the chunks to replay after its checkpoint."""

    stream_id: str
    model_version: str
    fs_hz: float
    lead: str
    start_time: str | None
    next_sample: int
    seq: int
    summary: dict[str, Any]
    checkpoint_seq: int
    checkpoint: tuple[str, bytes] | None
    chunks: list[tuple[int, np.ndarray]]  # (start, samples) after the checkpoint, in order


@dataclass
class ChunkRecord:
    """What one applied chunk writes (see :meth:`SignalStore.save_chunk`)."""

    stream_id: str
    seq: int
    start: int
    samples: np.ndarray
    next_sample: int
    start_time: str | None
    summary: dict[str, Any]
    key: str
    fingerprint: str
    ack: dict[str, Any]
    alerts: list[dict[str, Any]]
    checkpoint: tuple[str, bytes] | None = None  # written when due
    keep_acks: int = 600


@dataclass(frozen=True)
class Ack:
    """A chunk's acknowledgement, and its JSON text: encoded once, stored and sent as is."""

    value: dict[str, Any]
    text: str


class SignalStore(StateStore):
    """The state store with the signal-stream tables (see the module doc)."""

    def __init__(self, path: str, synchronous: str = "NORMAL") -> None:
        super().__init__(path, synchronous)
        with self._lock:
            self._db.executescript(_SIGNAL_SCHEMA)
            self._move_checkpoints()

    def _move_checkpoints(self) -> None:
        """Checkpoints a file of an earlier version kept in ``signal_streams``, moved to
        ``signal_checkpoints`` (once; the old columns are NULL afterwards)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO signal_checkpoints SELECT stream_id, checkpoint_seq, "
                "checkpoint_state, checkpoint_arrays FROM signal_streams "
                "WHERE checkpoint_state IS NOT NULL"
            )
            self._db.execute(
                "UPDATE signal_streams SET checkpoint_state = NULL, checkpoint_arrays = NULL "
                "WHERE checkpoint_state IS NOT NULL"
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def open_stream(
        self, stream_id: str, model_version: str, fs_hz: float, lead: str,
        start_time: str | None, summary: dict[str, Any],
    ) -> None:  # fmt: skip
        """Insert a new stream (the caller checked it does not exist)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO signal_streams VALUES (?, ?, ?, ?, ?, 0, 0, ?, 0, NULL, NULL, ?)",
                (stream_id, model_version, fs_hz, lead, start_time, json.dumps(summary),
                 time.time()),
            )  # fmt: skip

    def load_stream(self, stream_id: str) -> StoredStream | None:
        """The stream's row and the chunks after its checkpoint, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT s.model_version, s.fs_hz, s.lead, s.start_time, s.next_sample, s.seq, "
                "s.summary, COALESCE(c.seq, s.checkpoint_seq), c.state, c.arrays "
                "FROM signal_streams s LEFT JOIN signal_checkpoints c USING (stream_id) "
                "WHERE s.stream_id = ?",
                (stream_id,),
            ).fetchone()
            if row is None:
                return None
            chunks = self._db.execute(
                "SELECT start, samples FROM signal_chunks WHERE stream_id = ? AND seq > ? "
                "ORDER BY seq",
                (stream_id, row[7]),
            ).fetchall()
        checkpoint = None if row[8] is None else (row[8], bytes(row[9]))
        return StoredStream(
            stream_id, row[0], float(row[1]), row[2], row[3], int(row[4]), int(row[5]),
            json.loads(row[6]), int(row[7]), checkpoint,
            [(int(s), np.frombuffer(b, dtype="<f8")) for s, b in chunks],
        )  # fmt: skip

    def applied_chunk(self, stream_id: str, key: str) -> tuple[str, Ack] | None:
        """(fingerprint, acknowledgement) of the chunk applied under ``key``, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT fingerprint, ack FROM signal_acks WHERE stream_id = ? AND key = ?",
                (stream_id, key),
            ).fetchone()
        return None if row is None else (row[0], Ack(json.loads(row[1]), row[1]))

    def save_chunk(self, rec: ChunkRecord) -> Ack:
        """Write one applied chunk in one transaction; returns the acknowledgement with
        the new alerts' ids (their SSE event ids), and its JSON text as stored."""
        samples = np.ascontiguousarray(rec.samples, dtype="<f8").tobytes()
        ids: list[int] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                db = self._db
                db.execute(
                    "INSERT INTO signal_chunks VALUES (?, ?, ?, ?)",
                    (rec.stream_id, rec.seq, rec.start, samples),
                )
                for alert in rec.alerts:
                    cur = db.execute(
                        "INSERT INTO signal_alerts (stream_id, alert) VALUES (?, ?)",
                        (rec.stream_id, json.dumps(alert)),
                    )
                    ids.append(int(cur.lastrowid or 0))
                ack = dict(rec.ack)
                ack["alerts"] = [{"id": i, **a} for i, a in zip(ids, rec.alerts, strict=True)]
                text = encode_json(ack)
                db.execute(
                    "INSERT OR REPLACE INTO signal_acks VALUES (?, ?, ?, ?, ?)",
                    (rec.stream_id, rec.key, rec.seq, rec.fingerprint, text),
                )
                db.execute(
                    "UPDATE signal_streams SET next_sample = ?, seq = ?, summary = ?, "
                    "start_time = ?, updated_at = ? WHERE stream_id = ?",
                    (rec.next_sample, rec.seq, json.dumps(rec.summary), rec.start_time,
                     time.time(), rec.stream_id),
                )  # fmt: skip
                if rec.checkpoint is not None:
                    self._write_checkpoint(rec.stream_id, rec.seq, rec.checkpoint)
                    db.execute(
                        "DELETE FROM signal_chunks WHERE stream_id = ? AND seq <= ?",
                        (rec.stream_id, rec.seq),
                    )
                    db.execute(
                        "DELETE FROM signal_acks WHERE stream_id = ? AND seq <= ?",
                        (rec.stream_id, rec.seq - rec.keep_acks),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return Ack(ack, text)

    def _write_checkpoint(self, stream_id: str, seq: int, checkpoint: tuple[str, bytes]) -> None:
        """The stream's checkpoint row and its sequence number (inside a transaction)."""
        self._db.execute(
            "INSERT OR REPLACE INTO signal_checkpoints VALUES (?, ?, ?, ?)",
            (stream_id, seq, checkpoint[0], checkpoint[1]),
        )
        self._db.execute(
            "UPDATE signal_streams SET checkpoint_seq = ? WHERE stream_id = ?", (seq, stream_id)
        )

    def save_checkpoint(self, stream_id: str, seq: int, checkpoint: tuple[str, bytes]) -> None:
        """A checkpoint outside a chunk (an evicted stream), replacing the chunk log."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                current = self._db.execute(
                    "SELECT 1 FROM signal_streams WHERE stream_id = ? AND seq = ?",
                    (stream_id, seq),
                ).fetchone()
                if current is not None:  # no chunk was applied since (by another service)
                    self._write_checkpoint(stream_id, seq, checkpoint)
                    self._db.execute(
                        "DELETE FROM signal_chunks WHERE stream_id = ? AND seq <= ?",
                        (stream_id, seq),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def alerts(
        self, stream_id: str | None, after: int = 0, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Alerts with id > ``after`` (of one stream, or of all), oldest first."""
        sql = "SELECT id, stream_id, alert FROM signal_alerts WHERE id > ?"
        args: list[Any] = [after]
        if stream_id is not None:
            sql, args = sql + " AND stream_id = ?", [after, stream_id]
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id LIMIT ?", (*args, limit)).fetchall()
        return [{"id": int(i), "stream_id": s, **json.loads(a)} for i, s, a in rows]

    def idle_streams(self, before: float) -> list[str]:
        """Streams whose last chunk (or opening) is older than ``before`` (epoch seconds)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT stream_id FROM signal_streams WHERE updated_at < ?", (before,)
            ).fetchall()
        return [r[0] for r in rows]

    def delete_stream(self, stream_id: str, idle_before: float | None = None) -> bool:
        """Remove every row of the stream and truncate the WAL; False if there was none.
        With ``idle_before``, only a stream not updated since then (the retention sweep:
        a chunk racing the sweep wins)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                sql = "DELETE FROM signal_streams WHERE stream_id = ?"
                args: list[Any] = [stream_id]
                if idle_before is not None:
                    sql, args = sql + " AND updated_at < ?", [stream_id, idle_before]
                deleted = self._db.execute(sql, args).rowcount > 0
                for table in _STREAM_TABLES[1:] if deleted else ():
                    self._db.execute(f"DELETE FROM {table} WHERE stream_id = ?", (stream_id,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self.checkpoint()
        return deleted

    def stream_ids(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT stream_id FROM signal_streams")]

    def stream_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM signal_streams").fetchone()[0])
