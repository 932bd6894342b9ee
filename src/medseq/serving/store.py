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
latency per request (measured in ``benchmarks/results/serving.md``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import stat
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as save_arrays

from medseq.serving.engine import FeatureState, Observation, PatientState

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


def encode_state(state: PatientState) -> tuple[str, bytes]:
    """(JSON scalars, safetensors arrays) of a patient state.

    It runs once per acknowledged update, so it reads the feature block's rows directly
    (contiguous float64 views; only ``last_bin`` is converted, to its stored int64) and
    hands them to :func:`save_tensors`; the bytes equal those of ``safetensors.numpy.save``.
    """
    fs = state.features
    scalars = {
        "open_bin": fs.open_bin,
        "static_raw": {k: (None if math.isnan(v) else v) for k, v in fs.static_raw.items()},
        "alert": state.alert,
        "n_observations": state.n_observations,
        "last_time": state.last_time if math.isfinite(state.last_time) else None,
        "risk": state.risk,
        "alert_run": state.alert_run,
    }
    block = fs.block if fs.block.flags.c_contiguous else np.ascontiguousarray(fs.block)
    arrays: dict[str, np.ndarray] = {
        name: block[i] if dtype is np.float64 else block[i].astype(dtype)
        for i, (name, dtype) in enumerate(FeatureState.STORED_DTYPES.items())
    }
    arrays["hidden"] = np.ascontiguousarray(state.hidden)
    arrays["pool"] = np.ascontiguousarray(state.pool)
    return json.dumps(scalars), save_tensors(arrays, shared=[(block, FeatureState.ARRAYS)])


def save_tensors(
    arrays: dict[str, np.ndarray],
    shared: Sequence[tuple[np.ndarray, Sequence[str]]] = (),
) -> bytes:
    """``safetensors.numpy.save(arrays)``, byte for byte, without its per-array overhead.

    ``safetensors.numpy.save`` describes each array through ``ndarray.ctypes`` and
    ``dtype.name`` (several µs each; a state has 10 arrays, so that was the largest part
    of encoding one); here the same :class:`safetensors.TensorSpec` objects are built from
    the array interface, read once per ``(base, names)`` of ``shared``: a 2-D array whose
    rows are ``arrays[name]`` for the names it lists (the feature block). Arrays must be C-contiguous and of a native
    little-endian dtype (a state's are); anything else, or a safetensors without
    ``TensorSpec`` (< 0.7), goes through ``safetensors.numpy.save``.
    """
    spec = getattr(safetensors, "TensorSpec", None)
    if spec is None or not all(_plain(a) for a in arrays.values()):
        return save_arrays(arrays)
    pointers: dict[str, int] = {}
    for base, names in shared:
        start, row = base.__array_interface__["data"][0], base.strides[0]
        for i, name in enumerate(names):
            if arrays[name].base is base:  # a row of the block, not a converted copy
                pointers[name] = start + i * row
    flat = {
        name: spec(
            dtype=_DTYPE_NAMES[a.dtype.kind, a.dtype.itemsize], shape=a.shape,
            data_ptr=pointers.get(name) or a.__array_interface__["data"][0],
            data_len=a.nbytes,
        )  # fmt: skip
        for name, a in arrays.items()
    }
    return bytes(safetensors.serialize(flat))


#: ``dtype.name`` of the dtypes :func:`save_tensors` describes itself, by (kind, itemsize).
_DTYPE_NAMES = {("f", 8): "float64", ("f", 4): "float32", ("i", 8): "int64", ("i", 4): "int32"}
_LITTLE = sys.byteorder == "little"


def _plain(a: np.ndarray) -> bool:
    """C-contiguous, native little-endian, and of a dtype in :data:`_DTYPE_NAMES`."""
    dtype = a.dtype
    return (
        _LITTLE
        and a.flags.c_contiguous
        and (dtype.kind, dtype.itemsize) in _DTYPE_NAMES
        and dtype.byteorder in ("=", "<")
    )


def decode_state(scalars_json: str, blob: bytes) -> PatientState:
    """Inverse of :func:`encode_state`."""
    scalars = json.loads(scalars_json)
    arrays: dict[str, Any] = load_arrays(blob)
    static = {k: (np.nan if v is None else float(v)) for k, v in scalars["static_raw"].items()}
    features = FeatureState(
        open_bin=int(scalars["open_bin"]),
        static_raw=static,
        **{name: arrays[name] for name in FeatureState.ARRAYS},  # copied into its block
    )
    last_time = scalars["last_time"]
    return PatientState(
        features=features,
        hidden=arrays["hidden"].copy(),
        pool=arrays["pool"].copy(),
        alert=bool(scalars["alert"]),
        n_observations=int(scalars["n_observations"]),
        last_time=-np.inf if last_time is None else float(last_time),
        risk=float(scalars["risk"]),
        alert_run=int(scalars.get("alert_run", 0)),
    )


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
        logger.info("state store ready (WAL, synchronous=%s, secure_delete)", synchronous)

    def close(self) -> None:
        with self._lock:
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
        record in one transaction."""
        scalars, blob = encode_state(state)
        rows = [(patient_id, o.time, o.code, o.value) for o in observations]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO patients VALUES (?, ?, ?, ?, ?, ?)",
                    (patient_id, model_version, admission_time, scalars, blob, time.time()),
                )
                self._db.executemany(
                    "INSERT INTO observations (patient_id, time, code, value) VALUES (?,?,?,?)",
                    rows,
                )
                if record is not None:
                    self._record(patient_id, record)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

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
        """(fingerprint, acknowledgement) of the update applied under ``key``, or None."""
        with self._lock:
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
            rows = self._db.execute(
                "SELECT patient_id FROM patients WHERE updated_at < ?", (before,)
            ).fetchall()
        return [r[0] for r in rows]

    def count(self) -> int:
        """Open stays."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM patients").fetchone()[0])

    def patient_ids(self) -> Iterator[str]:
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT patient_id FROM patients")]
        yield from ids

    def info(self) -> dict[str, Any]:
        return {"path": self.path, "open_stays": self.count()}
