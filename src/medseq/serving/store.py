"""Patient states in SQLite (WAL), written in one transaction before the answer is sent.

Tables:

``patients``
    one row per open stay: the engine state (JSON for the scalars, a safetensors blob for
    the arrays; no pickle), the model version it was computed with, the admission time.
``observations``
    every acknowledged observation (hours since admission, variable, value), append only
    while the stay is open. It makes the state reproducible: after a model change the
    states are rebuilt by replaying it, and it is the audit trail of what was used.
``updates``
    the idempotency key of every applied update (``Idempotency-Key``, ``update_id``, or the
    ids of a FHIR Bundle's Observations) with a hash of its content and its
    acknowledgement, so a retry is answered the same and applied once, also after a restart.
``observation_ids``
    the FHIR ``Observation.id`` of every applied Observation: one re-sent in another
    Bundle is not applied twice.

All four are written in the one transaction of an update and deleted together.

Protected health information: the files (database, ``-wal``, ``-shm``) are created
readable by their owner only (0600, also tightened on an existing file);
``secure_delete`` overwrites deleted rows with zeros, and every delete is followed by a
``wal_checkpoint(TRUNCATE)``, so a deleted patient's id and values are in none of the
files afterwards; opening the store checkpoints too, which cleans a WAL left by a crash.

Durability: the journal is WAL with ``synchronous=NORMAL`` by default. A commit is then
in the operating system's hands when ``commit()`` returns, so killing the server process
(``kill -9``) loses nothing acknowledged; only a crash of the machine itself (power loss,
kernel panic) can lose the last commits, never corrupt the file. ``synchronous="FULL"``
adds an fsync per commit and survives power loss too, at the cost of the disk's fsync
latency per request (measured in ``benchmarks/results/serving.md``). The WAL is copied
into the database by :class:`WalCheckpointer`'s thread, not inside a commit.

Group commit: :meth:`StateStore.stage` queues an update's writes and
:meth:`StateStore.flush` commits all queued ones in one transaction
(:mod:`medseq.serving.group_commit`); :meth:`StateStore.save` is both at once.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medseq.serving.engine import Observation, PatientState
from medseq.serving.group_commit import CommitFailed, CommitTicket
from medseq.serving.state_codec import decode_state, encode_state
from medseq.serving.state_codec import load_arrays as load_arrays  # re-exported
from medseq.serving.wal_checkpoint import WalCheckpointer

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
SYNCHRONOUS = ("NORMAL", "FULL")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS patients (
    patient_id TEXT PRIMARY KEY,
    model_version TEXT NOT NULL,
    admission_time TEXT,
    scalars TEXT NOT NULL,
    arrays BLOB NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS observations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    patient_id TEXT NOT NULL,
    time REAL NOT NULL,
    code TEXT NOT NULL,
    value REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS observations_patient ON observations (patient_id, seq);
CREATE INDEX IF NOT EXISTS patients_updated ON patients (updated_at);
CREATE TABLE IF NOT EXISTS updates (
    patient_id TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    ack TEXT NOT NULL,
    PRIMARY KEY (patient_id, key)
);
CREATE TABLE IF NOT EXISTS observation_ids (
    patient_id TEXT NOT NULL,
    obs_id TEXT NOT NULL,
    PRIMARY KEY (patient_id, obs_id)
);
"""
#: Tables holding rows of a patient, all deleted with the patient.
_PATIENT_TABLES = ("patients", "observations", "updates", "observation_ids")
_SIDE_FILES = ("", "-wal", "-shm")


@dataclass(frozen=True)
class UpdateRecord:
    """What an applied update leaves beside the state, for idempotent retries.

    Attributes
    ----------
    key : str or None
        The update's idempotency key (None: not recorded).
    fingerprint : str
        Hash of the update's content: the same key with other content is a conflict.
    ack : dict
        The acknowledgement answered, answered again to a retry.
    observation_ids : sequence of str
        FHIR ``Observation.id`` of the applied Observations.
    """

    key: str | None = None
    fingerprint: str = ""
    ack: dict[str, Any] = field(default_factory=dict)
    observation_ids: Sequence[str] = ()


def _private_file(path: str) -> None:
    """Create ``path`` (and tighten it and its WAL/SHM files) to owner-only access (0600).

    SQLite creates ``-wal`` and ``-shm`` with the mode of the database file, so a database
    created 0600 keeps all three private; an older, more open file is tightened and
    logged.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    for suffix in _SIDE_FILES:
        name = path + suffix
        try:
            mode = stat.S_IMODE(os.stat(name).st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            os.chmod(name, 0o600)
            logger.warning("state store: tightened a file's mode from %o to 600", mode)


@dataclass
class StoredPatient:
    """A row of ``patients`` with the state decoded."""

    patient_id: str
    model_version: str
    admission_time: str | None
    state: PatientState


class StateStore:
    """SQLite store of streaming states; one connection, serialised by a lock.

    Parameters
    ----------
    path : str or Path
        Database file (created 0600). ``":memory:"`` for tests without persistence.
    synchronous : {"NORMAL", "FULL"}, default="NORMAL"
        See the module doc.
    """

    def __init__(self, path: str | Path, synchronous: str = "NORMAL") -> None:
        synchronous = synchronous.upper()
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}, got {synchronous!r}")
        self.path = str(path)
        self.on_disk = self.path != ":memory:" and not self.path.startswith("file:")
        if self.on_disk:
            _private_file(self.path)
        self._lock = threading.Lock()
        self._staged: list[tuple[tuple, list[tuple], UpdateRecord | None, CommitTicket]] = []
        self._staged_keys: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        self._staged_ids: dict[str, set[str]] = {}
        self._staged_patients: set[str] = set()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._db.execute(
            "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                         (str(SCHEMA_VERSION),))  # fmt: skip
        if self.on_disk:
            _private_file(self.path)  # the -wal and -shm files exist now
        self.checkpoint()  # a WAL left by a crash may hold deleted rows
        self._checkpointer: WalCheckpointer | None = None
        if self.on_disk:  # commits no longer wait for checkpoints (see WalCheckpointer)
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = WalCheckpointer(self.path)
        logger.info("state store ready (WAL, synchronous=%s, secure_delete)", synchronous)

    def close(self) -> None:
        """Commit what is staged (an error is logged: those updates were not answered),
        then close."""
        if self._checkpointer is not None:
            self._checkpointer.close()
        with self._lock:
            try:
                self._flush_locked()
            except CommitFailed as err:
                logger.error("state store: staged writes not committed at close (%s)",
                             type(err.__cause__).__name__)  # fmt: skip
            self._db.close()

    def checkpoint(self) -> bool:
        """Copy the WAL into the database and truncate it to 0 bytes; False if blocked."""
        with self._lock:
            busy = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if busy:
            logger.warning("state store: WAL checkpoint blocked by a reader; retried later")
        return not busy

    def save(
        self,
        patient_id: str,
        model_version: str,
        admission_time: str | None,
        state: PatientState,
        observations: Sequence[Observation],
        record: UpdateRecord | None = None,
    ) -> None:
        """Write the new state, the applied observations and the update's idempotency
        record in one transaction (with any staged writes before them, in order).

        Raises
        ------
        CommitFailed
            Nothing of it (nor of the staged writes) was committed.
        """
        ticket = self.stage(patient_id, model_version, admission_time, state, observations, record)
        self.flush()
        if ticket.error is not None:
            raise ticket.error

    def stage(
        self,
        patient_id: str,
        model_version: str,
        admission_time: str | None,
        state: PatientState,
        observations: Sequence[Observation],
        record: UpdateRecord | None = None,
    ) -> CommitTicket:
        """Queue the writes of :meth:`save` for the next :meth:`flush` (group commit).

        The state is encoded now (the caller goes on changing it). Every read of this store
        commits the staged writes first where they matter to it (a read of the patient's
        rows, a retried key, a re-sent Observation id, a count), so it never answers from a
        state older than one staged. Answer the update only once the returned ticket is
        ``done`` without ``error``.
        """
        scalars, blob = encode_state(state)
        rows = [(patient_id, o.time, o.code, o.value) for o in observations]
        row = (patient_id, model_version, admission_time, scalars, blob, time.time())
        ticket = CommitTicket(patient_id)
        with self._lock:
            self._staged.append((row, rows, record, ticket))
            self._staged_patients.add(patient_id)
            if record is not None and record.key is not None:
                self._staged_keys[patient_id, record.key] = (record.fingerprint, record.ack)
            if record is not None and record.observation_ids:
                self._staged_ids.setdefault(patient_id, set()).update(record.observation_ids)
        return ticket

    @property
    def n_staged(self) -> int:
        """Writes staged and not yet flushed."""
        return len(self._staged)

    def flush(self) -> list[CommitTicket]:
        """Commit every staged write in one transaction; the tickets it settled.

        On failure the transaction is rolled back and each ticket carries the
        :class:`CommitFailed` (the exception is not raised here: each caller answers for
        its own ticket; :meth:`save` raises it).
        """
        with self._lock:
            return self._flush_locked(raise_error=False)

    def _flush_locked(self, raise_error: bool = True) -> list[CommitTicket]:
        staged = self._staged
        if not staged:
            return []
        self._staged, self._staged_keys, self._staged_ids = [], {}, {}
        self._staged_patients = set()
        tickets = [item[3] for item in staged]
        error: CommitFailed | None = None
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for row, rows, record, _ in staged:
                self._write(row, rows, record)
            self._db.execute("COMMIT")
        except BaseException as err:
            self._db.execute("ROLLBACK")
            error = CommitFailed(sorted({t.patient_id for t in tickets}))
            error.__cause__ = err
            if not isinstance(err, Exception):
                raise
        for ticket in tickets:
            ticket.error, ticket.done = error, True
        if error is not None and raise_error:
            raise error
        return tickets

    def _write(self, row: tuple, rows: list[tuple], record: UpdateRecord | None) -> None:
        self._db.execute("INSERT OR REPLACE INTO patients VALUES (?, ?, ?, ?, ?, ?)", row)
        self._db.executemany(
            "INSERT INTO observations (patient_id, time, code, value) VALUES (?,?,?,?)", rows
        )
        if record is not None:
            self._record(row[0], record)

    def _record(self, patient_id: str, record: UpdateRecord) -> None:
        if record.key is not None:
            self._db.execute(
                "INSERT OR REPLACE INTO updates VALUES (?, ?, ?, ?)",
                (patient_id, record.key, record.fingerprint, json.dumps(record.ack)),
            )
        self._db.executemany(
            "INSERT OR IGNORE INTO observation_ids VALUES (?, ?)",
            [(patient_id, i) for i in record.observation_ids],
        )

    def applied_update(self, patient_id: str, key: str) -> tuple[str, dict[str, Any]] | None:
        """(fingerprint, acknowledgement) of the update applied (or staged) under ``key``."""
        with self._lock:
            if (patient_id, key) in self._staged_keys:  # a retry of a staged update: its
                self._flush_locked()  # answer waits for that commit, so commit it now
            row = self._db.execute(
                "SELECT fingerprint, ack FROM updates WHERE patient_id = ? AND key = ?",
                (patient_id, key),
            ).fetchone()
        return None if row is None else (row[0], json.loads(row[1]))

    def applied_observation_ids(self, patient_id: str, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` already applied to ``patient_id``."""
        unique = sorted(set(ids))
        seen: set[str] = set()
        with self._lock:
            if self._staged_ids.get(patient_id, set()).intersection(unique):
                self._flush_locked()  # as in applied_update: staged ids count once committed
            for k in range(0, len(unique), 500):  # SQLite's bound-parameter limit
                part = unique[k : k + 500]
                marks = ",".join("?" * len(part))
                rows = self._db.execute(
                    f"SELECT obs_id FROM observation_ids WHERE patient_id = ? "
                    f"AND obs_id IN ({marks})",
                    (patient_id, *part),
                )
                seen.update(r[0] for r in rows)
        return seen

    def load(self, patient_id: str) -> StoredPatient | None:
        """The stored state of ``patient_id``, or None."""
        with self._lock:
            if patient_id in self._staged_patients:  # others' staged rows do not matter
                self._flush_locked()
            row = self._db.execute(
                "SELECT model_version, admission_time, scalars, arrays FROM patients "
                "WHERE patient_id = ?",
                (patient_id,),
            ).fetchone()
        if row is None:
            return None
        return StoredPatient(patient_id, row[0], row[1], decode_state(row[2], row[3]))

    def observations(self, patient_id: str) -> list[Observation]:
        """Every acknowledged observation of ``patient_id``, in arrival order."""
        with self._lock:
            if patient_id in self._staged_patients:  # others' staged rows do not matter
                self._flush_locked()
            rows = self._db.execute(
                "SELECT code, time, value FROM observations WHERE patient_id = ? ORDER BY seq",
                (patient_id,),
            ).fetchall()
        return [Observation(code, t, v) for code, t, v in rows]

    def delete(
        self, patient_id: str, idle_before: float | None = None, checkpoint: bool = True
    ) -> bool:
        """End a stay: remove every row of it; False if there was none.

        With ``idle_before`` (epoch seconds) only a stay last updated before then is
        deleted (the retention sweep; an update racing the sweep wins). ``checkpoint``
        truncates the WAL afterwards, so the deleted rows are in no file.
        """
        with self._lock:
            if patient_id in self._staged_patients:  # a staged write must not outlive it
                self._flush_locked()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                sql = "DELETE FROM patients WHERE patient_id = ?"
                args: list[Any] = [patient_id]
                if idle_before is not None:
                    sql, args = sql + " AND updated_at < ?", [patient_id, idle_before]
                cur = self._db.execute(sql, args)
                deleted = cur.rowcount > 0
                if deleted or idle_before is None:
                    for table in _PATIENT_TABLES[1:]:
                        self._db.execute(f"DELETE FROM {table} WHERE patient_id = ?", (patient_id,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        if checkpoint:
            self.checkpoint()
        return deleted

    def idle_patients(self, before: float) -> list[str]:
        """Patients whose last update is older than ``before`` (epoch seconds)."""
        with self._lock:
            self._flush_locked()
            rows = self._db.execute(
                "SELECT patient_id FROM patients WHERE updated_at < ?", (before,)
            ).fetchall()
        return [r[0] for r in rows]

    def count(self) -> int:
        """Open stays."""
        with self._lock:
            self._flush_locked()
            return int(self._db.execute("SELECT COUNT(*) FROM patients").fetchone()[0])

    def patient_ids(self) -> Iterator[str]:
        with self._lock:
            self._flush_locked()
            ids = [r[0] for r in self._db.execute("SELECT patient_id FROM patients")]
        yield from ids

    def info(self) -> dict[str, Any]:
        return {"path": self.path, "open_stays": self.count()}
