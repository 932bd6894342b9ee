"""Patient states in SQLite (WAL), written in one transaction before the answer is sent.

Two tables:

``patients``
    one row per open stay: the engine state (JSON for the scalars, a safetensors blob for
    the arrays; no pickle), the model version it was computed with, the admission time.
``observations``
    every acknowledged observation (hours since admission, variable, value), append only
    while the stay is open. It makes the state reproducible: after a model change the
    states are rebuilt by replaying it, and it is the audit trail of what was used.

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
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as save_arrays

from medseq.serving.engine import Observation, PatientState
from medseq.serving.incremental import FeatureState

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
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
"""


@dataclass
class StoredPatient:
    """A row of ``patients`` with the state decoded."""

    patient_id: str
    model_version: str
    admission_time: str | None
    state: PatientState


def encode_state(state: PatientState) -> tuple[str, bytes]:
    """(JSON scalars, safetensors arrays) of a patient state."""
    fs = state.features
    scalars = {
        "open_bin": fs.open_bin,
        "static_raw": {k: (None if np.isnan(v) else v) for k, v in fs.static_raw.items()},
        "alert": state.alert,
        "n_observations": state.n_observations,
        "last_time": None if not np.isfinite(state.last_time) else state.last_time,
        "risk": state.risk,
        "alert_run": state.alert_run,
    }
    arrays = {name: np.ascontiguousarray(getattr(fs, name)) for name in FeatureState.ARRAYS}
    arrays["hidden"] = np.ascontiguousarray(state.hidden)
    arrays["pool"] = np.ascontiguousarray(state.pool)
    return json.dumps(scalars), save_arrays(arrays)


def decode_state(scalars_json: str, blob: bytes) -> PatientState:
    """Inverse of :func:`encode_state`."""
    scalars = json.loads(scalars_json)
    arrays: dict[str, Any] = load_arrays(blob)
    static = {k: (np.nan if v is None else float(v)) for k, v in scalars["static_raw"].items()}
    features = FeatureState(
        open_bin=int(scalars["open_bin"]),
        static_raw=static,
        **{name: arrays[name].copy() for name in FeatureState.ARRAYS},
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
        Database file (created). ``":memory:"`` for tests without persistence.
    synchronous : {"NORMAL", "FULL"}, default="NORMAL"
        See the module doc.
    """

    def __init__(self, path: str | Path, synchronous: str = "NORMAL") -> None:
        synchronous = synchronous.upper()
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}, got {synchronous!r}")
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._db.execute(
            "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        logger.info("state store ready (WAL, synchronous=%s)", synchronous)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def save(
        self,
        patient_id: str,
        model_version: str,
        admission_time: str | None,
        state: PatientState,
        observations: Sequence[Observation],
    ) -> None:
        """Write the new state and the applied observations in one transaction."""
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
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

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

    def delete(self, patient_id: str) -> bool:
        """End a stay: remove its state and observations; False if there was none."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            cur = self._db.execute("DELETE FROM patients WHERE patient_id = ?", (patient_id,))
            self._db.execute("DELETE FROM observations WHERE patient_id = ?", (patient_id,))
            self._db.execute("COMMIT")
        return cur.rowcount > 0

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
