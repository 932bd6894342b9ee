"""Open stays of the streaming API: engine + a bounded cache of states + the SQLite store.

Every update is applied to the patient's state, then the new state, the applied
observations and the update's idempotency record are committed in one SQLite transaction,
and only then answered. If the commit fails, the in-memory copy is dropped (the next
request reloads the last committed state), so memory never runs ahead of what was
acknowledged. A state stored by another bundle (another ``model_version``) is rebuilt by
replaying the stored observations.

Bounded memory
    At most ``max_cached_patients`` states stay in memory, least recently used evicted
    first. Every cached state is already committed, so eviction writes nothing; an evicted
    patient's next request reloads the state from SQLite, bit for bit the same (the
    safetensors arrays and the JSON scalars round-trip exactly), so the risks equal those
    of an unbounded cache. Of the cached states only the ``warm_patients`` most recently
    used are live objects; the others are packed into one compressed ``bytes`` each
    (:mod:`medseq.serving.compact`, also bit for bit), which keeps a full cache of 10,000
    states within the 50 MB the service is allowed to grow by.

Concurrency
    Requests of one patient are serialised by a per-patient lock (held from reading the
    state to the commit); requests of different patients run in parallel. The locks live
    only while a request of the patient is in flight, so they do not grow with patients.

Idempotent updates
    An update carrying a key (``Idempotency-Key`` header or ``update_id`` of the JSON form;
    for a FHIR Bundle whose Observations all have ids, the set of those ids) is applied
    once: a retry with the same key and content gets the stored acknowledgement again and
    changes nothing; the same key with other content is refused
    (:class:`IdempotencyConflict`). A FHIR Observation whose ``id`` was applied before,
    also in another Bundle, is not applied again and is listed in ``skipped`` with reason
    ``duplicate_id`` (a correction of an applied Observation cannot rewrite the closed
    history either). Keys and ids are stored with the state and survive restarts.

Retention
    :meth:`StreamService.sweep` deletes the stays idle (no update) for longer than the
    retention; :func:`sweep_forever` runs it periodically in the service.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from medseq.bundle import Bundle
from medseq.serving.compact import pack_state, unpack_state
from medseq.serving.engine import (
    AlertPolicy,
    Observation,
    ObservationError,
    PatientState,
    StreamingEngine,
    UpdateResult,
)
from medseq.serving.inputs import History
from medseq.serving.recurrent import StreamingUnsupported
from medseq.serving.store import CommitFailed, CommitTicket, StateStore, UpdateRecord

logger = logging.getLogger(__name__)

DEFAULT_MAX_CACHED = 10_000
#: Cached states kept live, with their step terms (see :class:`_LRU`); the rest are packed.
DEFAULT_WARM = 1_000
#: Reason in ``skipped`` for an Observation whose id was applied before.
DUPLICATE_ID = "duplicate_id"


class IdempotencyConflict(ValueError):
    """An idempotency key already applied to other content of the same patient."""


@dataclass(slots=True)
class OpenStay:
    """A patient's state and the absolute admission time (FHIR input), if known."""

    state: PatientState
    admission_time: str | None


@dataclass(frozen=True)
class Ack:
    """The acknowledgement of an update: what the answer holds besides the model version.

    ``replayed`` is True when the update was a retry answered from the stored record.
    """

    risk: float
    alert: bool
    n_observations: int
    hours_covered: int
    admission_time: str | None
    n_applied: int
    skipped: list[dict[str, Any]] = field(default_factory=list)
    replayed: bool = False
    #: The staged commit to wait for before answering (``update(..., stage=True)``).
    ticket: CommitTicket | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        skip = ("replayed", "ticket")
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in skip}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Ack:
        return cls(**body, replayed=True)


class _KeyedLocks:
    """One lock per key, alive only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, list[Any]] = {}  # key -> [lock, users]

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[key]

    def busy(self, key: str) -> bool:
        """Whether a thread holds or waits for ``key``'s lock."""
        with self._guard:
            return key in self._locks

    def __len__(self) -> int:
        return len(self._locks)


class _LRU:
    """A thread-safe least-recently-used map of at most ``size`` stays, most of them packed.

    The ``warm`` most recently used stays are live objects and keep their derived step
    terms (a further update in the same bin is then cheapest). Older ones are held packed,
    one compressed ``bytes`` each (:func:`~medseq.serving.compact.pack_state`, lossless to
    the bit, about half the memory of a live state or less), and rehydrated into a live
    state when used again. A full cache of 10,000 then costs about 1,000 live states plus
    9,000 blobs instead of 10,000 live states.

    ``busy(key)`` says whether a request of that patient is in flight (holds or waits for
    its lock): such a stay may be half-way through an update, so it is never packed; it
    stays live until its request puts it back. A stay that is not busy cannot become busy
    while it is being packed, since its next request must first :meth:`get` it under this
    map's lock.
    """

    def __init__(
        self, size: int, warm: int = DEFAULT_WARM, busy: Callable[[str], bool] | None = None
    ) -> None:
        self.size = size
        self.warm = warm
        self._busy = busy or (lambda key: False)
        self._live: OrderedDict[str, OpenStay] = OrderedDict()
        self._packed: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.evictions = 0

    def get(self, key: str) -> OpenStay | None:
        with self._lock:
            item = self._live.get(key)
            if item is not None:
                self._live.move_to_end(key)
                return item
            blob = self._packed.pop(key, None)
            if blob is None:
                return None
            state, admission_time = unpack_state(blob)
            item = OpenStay(state, admission_time)
            self._live[key] = item
            self._cool()
            return item

    def put(self, key: str, item: OpenStay) -> None:
        with self._lock:
            self._packed.pop(key, None)
            self._live[key] = item
            self._live.move_to_end(key)
            self._cool()
            while len(self._live) + len(self._packed) > self.size:
                if self._packed:
                    self._packed.popitem(last=False)
                else:
                    self._live.popitem(last=False)
                self.evictions += 1

    def _cool(self) -> None:
        """Pack the least recently used live stays beyond ``warm``; a busy one among them
        stays live (over ``warm`` for a moment) and is packed by a later call."""
        excess = len(self._live) - self.warm
        if excess <= 0:
            return
        for key in [k for k, _ in zip(self._live, range(excess), strict=False)]:
            if self._busy(key):
                continue
            item = self._live.pop(key)
            try:
                blob = pack_state(item.state, item.admission_time)
            except Exception as err:  # committed in the store: dropping it loses nothing
                logger.error("state cache: could not pack a state (%s); dropped, it is "
                             "reloaded from the store", type(err).__name__)  # fmt: skip
                self.evictions += 1
                continue
            self._packed[key] = blob

    def pop(self, key: str) -> None:
        with self._lock:
            self._live.pop(key, None)
            self._packed.pop(key, None)

    @property
    def n_packed(self) -> int:
        """Stays held packed (the rest of :func:`len` are live)."""
        return len(self._packed)

    def packed_bytes(self) -> int:
        """Bytes of the packed blobs (their payload, without the ``bytes`` headers)."""
        with self._lock:
            return sum(len(b) for b in self._packed.values())

    def __len__(self) -> int:
        return len(self._live) + len(self._packed)


def _snapshot(stay: OpenStay) -> OpenStay:
    """A copy safe to read after the patient's lock is released (the featurizer's block
    is copied, as the engine writes into it; hidden and pool are shared: the engine
    writes into them too, but the answer reads only scalars)."""
    state = copy.copy(stay.state)
    state.features = copy.copy(stay.state.features)
    state.features.block = state.features.block.copy()
    return OpenStay(state, stay.admission_time)


def _fingerprint(history: History) -> str:
    """Hash of what an update would apply (not of the JSON spelling of the body)."""
    content = {
        "obs": [[o.code, o.time, o.value] for o in history.observations],
        "ids": list(history.observation_ids),
        "static": sorted(history.static.items()),
        "admission": history.admission_time,
    }
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()


class StreamService:
    """Streaming updates of many patients; see the module doc.

    Parameters
    ----------
    bundle : Bundle
    model_version : str
    store : StateStore
    alert : AlertPolicy
    max_cached_patients : int, default=10_000
        States kept in memory (least recently used evicted; reloaded from the store).
    warm_patients : int, default=1_000
        Of those, the most recently used kept as live objects with their step terms; the
        others are held packed, lossless (see :class:`_LRU`).
    """

    def __init__(
        self,
        bundle: Bundle,
        model_version: str,
        store: StateStore,
        alert: AlertPolicy,
        max_cached_patients: int = DEFAULT_MAX_CACHED,
        warm_patients: int = DEFAULT_WARM,
    ) -> None:
        if max_cached_patients < 1:
            raise ValueError(f"max_cached_patients must be >= 1, got {max_cached_patients}")
        if warm_patients < 0:
            raise ValueError(f"warm_patients must be >= 0, got {warm_patients}")
        self.model_version = model_version
        self.store = store
        self.unsupported: str | None = None
        self.engine: StreamingEngine | None = None
        try:
            self.engine = self._make_engine(bundle, alert)
        except StreamingUnsupported as err:
            self.unsupported = str(err)
            logger.warning("streaming endpoints disabled: %s", err)
        self._locks = _KeyedLocks()
        self._cache = _LRU(max_cached_patients, warm_patients, self._locks.busy)

    def _make_engine(self, bundle: Bundle, alert: AlertPolicy) -> Any:
        """The engine advancing states; a dataset's streaming part may subclass for another
        (e.g. whole ICU hours); raises :class:`StreamingUnsupported` when impossible."""
        return StreamingEngine(bundle, alert)

    def _require_engine(self) -> StreamingEngine:
        if self.engine is None:
            raise StreamingUnsupported(self.unsupported or "streaming is not available")
        return self.engine

    @property
    def n_cached(self) -> int:
        """States held in memory now."""
        return len(self._cache)

    def get(self, patient_id: str) -> OpenStay | None:
        """A snapshot of the open stay of ``patient_id`` (memory, else store), or None;
        staged updates are committed first, so it answers only committed states."""
        if self.store.n_staged:
            self.flush()
        with self._locks.hold(patient_id):
            stay = self._get(patient_id)
            return None if stay is None else _snapshot(stay)

    def admission_time(self, patient_id: str) -> str | None:
        """The admission time of ``patient_id``'s open stay (None: no stay, or none known).

        What parsing an update needs (FHIR times are hours since it): unlike :meth:`get` it
        copies no state and leaves staged updates to their group commit.
        """
        with self._locks.hold(patient_id):
            stay = self._get(patient_id)
            return None if stay is None else stay.admission_time

    def _get(self, patient_id: str) -> OpenStay | None:
        """The cached stay (loaded from the store on a miss); the caller holds the lock."""
        stay = self._cache.get(patient_id)
        if stay is not None:
            return stay
        try:
            stored = self.store.load(patient_id)  # commits staged writes first
        except CommitFailed as err:
            self._forget(err)
            raise
        if stored is None:
            return None
        state = stored.state
        if stored.model_version != self.model_version:
            state = self._replay(patient_id, state)
        stay = OpenStay(state, stored.admission_time)
        self._cache.put(patient_id, stay)
        return stay

    def _replay(self, patient_id: str, old: PatientState) -> PatientState:
        engine = self._require_engine()
        static = {k: v for k, v in old.features.static_raw.items() if v == v}
        state = engine.new_state(static)
        engine.update(state, self.store.observations(patient_id))
        logger.info("rebuilt one stored state for the current model by replay")
        return state

    def update(
        self, patient_id: str, history: History, key: str | None = None, stage: bool = False
    ) -> Ack:
        """Apply a request's observations once; commit; return the acknowledgement.

        Parameters
        ----------
        key : str, optional
            The update's idempotency key (see the module doc); ``history.update_id`` is
            used when None.
        stage : bool, default=False
            Stage the write instead of committing it (group commit): the answer carries
            ``ticket``; answer it only once :meth:`flush` has settled the ticket without
            error (:class:`~medseq.serving.group_commit.GroupCommit` does).

        Raises
        ------
        ObservationError
            Nothing was applied (e.g. an observation before the open bin).
        IdempotencyConflict
            ``key`` was applied before to other content.
        """
        engine = self._require_engine()
        key, derived = self._key(history, key)
        fingerprint = "" if key is None else _fingerprint(history)  # kept only with a key
        with self._locks.hold(patient_id):
            if key is not None:
                done = self.store.applied_update(patient_id, key)
                if done is not None and done[0] == fingerprint:
                    return Ack.from_json(done[1])
                if done is not None and not derived:
                    raise IdempotencyConflict(
                        "this idempotency key was already used for a different update of "
                        "this patient; use a new key for new content"
                    )
            observations, origins, ids, duplicates = self._new_only(patient_id, history)
            stay, static = self._get(patient_id), history.static
            if stay is None:  # descriptors set once: the encoder runs once, not twice
                stay, static = OpenStay(engine.new_state(static), history.admission_time), {}
            engine.check(stay.state, observations)  # a refusal changes nothing
            try:
                result = engine.update(stay.state, observations, static)
                ack = self._ack(stay, result, history, origins, duplicates)
                skipped_idx = {s["index"] for s in result.skipped}
                applied = [o for i, o in enumerate(observations) if i not in skipped_idx]
                record = UpdateRecord(key, fingerprint, ack.to_json(), ids)
                version, admitted = self.model_version, stay.admission_time
                args = (patient_id, version, admitted, stay.state, applied, record)
                ticket = None
                if stage:
                    ticket = self.store.stage(*args)
                else:
                    self.store.save(*args)
            except Exception as err:
                self._forget(err)
                self._cache.pop(patient_id)  # reload the last committed state next time
                raise
            # the featurizer's per-bin constants stay with the live state (the next update
            # in the same bin reuses them, as the step terms); packing drops both
            self._cache.put(patient_id, stay)
            return replace(ack, ticket=ticket) if stage else ack

    def flush(self) -> None:
        """Commit the staged updates in one transaction (group commit). The tickets of a
        failed commit carry its error, and their patients' cached states are dropped (the
        next request reloads the last committed state), as after a failed :meth:`update`."""
        for ticket in self.store.flush():
            if ticket.error is not None:
                self._cache.pop(ticket.patient_id)

    def _forget(self, err: BaseException) -> None:
        """After a failed commit of staged writes (:class:`CommitFailed`, raised by a read
        that flushes first), drop the cached states of every patient in it."""
        if isinstance(err, CommitFailed):
            for patient_id in err.patient_ids:
                self._cache.pop(patient_id)

    @staticmethod
    def _key(history: History, key: str | None) -> tuple[str | None, bool]:
        """The update's key, and whether it was derived from Observation ids."""
        if key is not None and history.update_id is not None and key != history.update_id:
            raise IdempotencyConflict(
                "the Idempotency-Key header and the body's update_id differ; send one"
            )
        key = key if key is not None else history.update_id
        if key is not None:
            return "key:" + key, False
        ids = history.observation_ids
        if ids and len(ids) == len(history.observations) and all(ids):
            digest = hashlib.sha256(json.dumps(sorted(set(ids))).encode()).hexdigest()
            return "ids:" + digest, True
        return None, False

    def _new_only(
        self, patient_id: str, history: History
    ) -> tuple[list[Observation], list[int], list[str], list[dict[str, Any]]]:
        """The observations whose Observation id was not applied before (nor earlier in
        this request), their request indices, their ids, and the duplicates left out."""
        ids = list(history.observation_ids) or [None] * len(history.observations)
        if len(ids) != len(history.observations):
            raise ValueError("History.observation_ids must align with observations")
        seen = self.store.applied_observation_ids(patient_id, [i for i in ids if i])
        first_origin: dict[str, int] = {}
        keep_obs: list[Observation] = []
        keep_origins: list[int] = []
        duplicates: list[dict[str, Any]] = []
        for obs, origin, oid in zip(history.observations, history.origins, ids, strict=True):
            if oid is not None:
                owner = first_origin.setdefault(oid, origin)
                if oid in seen or owner != origin:  # components of one resource share it
                    duplicates.append({"index": origin, "code": obs.code, "reason": DUPLICATE_ID})
                    continue
            keep_obs.append(obs)
            keep_origins.append(origin)
        new_ids = sorted({i for i in ids if i and i not in seen})
        return keep_obs, keep_origins, new_ids, duplicates

    @staticmethod
    def _ack(
        stay: OpenStay,
        result: UpdateResult,
        history: History,
        origins: list[int],
        duplicates: list[dict[str, Any]],
    ) -> Ack:
        state = stay.state
        skipped = history.skipped + duplicates
        skipped += [{**s, "index": origins[s["index"]]} for s in result.skipped]
        return Ack(
            risk=state.risk,
            alert=state.alert,
            n_observations=state.n_observations,
            hours_covered=state.features.open_bin + 1 if state.n_observations else 0,
            admission_time=stay.admission_time,
            n_applied=result.n_applied,
            skipped=sorted(skipped, key=lambda s: s["index"]),
        )

    def discharge(self, patient_id: str) -> OpenStay | None:
        """End a stay: its final state, or None if unknown; the stored rows are deleted
        (and the WAL truncated, so they are in no file)."""
        with self._locks.hold(patient_id):
            stay = self._get(patient_id)
            if stay is None:
                return None
            try:
                self.store.delete(patient_id)  # commits staged writes first
            except CommitFailed as err:
                self._forget(err)
                raise
            self._cache.pop(patient_id)
            return stay

    def sweep(self, retention_hours: float, now: float | None = None) -> int:
        """Delete the stays without an update for more than ``retention_hours``; their count.

        Each deletion holds the patient's lock and re-checks the idle time in the same
        transaction, so a stay updated meanwhile is kept.
        """
        before = (time.time() if now is None else now) - retention_hours * 3600.0
        self.flush()  # a staged update makes its stay not idle
        deleted = 0
        for patient_id in self.store.idle_patients(before):
            with self._locks.hold(patient_id):
                if self.store.delete(patient_id, idle_before=before, checkpoint=False):
                    self._cache.pop(patient_id)
                    deleted += 1
        if deleted:
            self.store.checkpoint()
            logger.info("retention sweep: deleted %d idle stay(s)", deleted)
        return deleted

    def n_open(self) -> int:
        return self.store.count()

    def describe(self) -> dict[str, Any]:
        """Streaming part of the model card."""
        info: dict[str, Any] = {"supported": self.engine is not None}
        if self.engine is None:
            info["reason"] = self.unsupported
        else:
            policy = self.engine.alert
            info["alert"] = {"threshold": policy.on, "hysteresis": policy.hysteresis}
            info["max_cached_patients"] = self._cache.size
        return info


async def sweep_forever(service: Any, retention_hours: float, interval_s: float) -> None:
    """Run ``service.sweep(retention_hours)`` every ``interval_s`` seconds (off the event
    loop) until cancelled; an error is logged (type only) and the next sweep tries again."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(service.sweep, retention_hours)
        except Exception as err:
            logger.error("retention sweep failed: %s", type(err).__name__)


__all__ = [
    "Ack",
    "IdempotencyConflict",
    "ObservationError",
    "OpenStay",
    "StreamService",
    "sweep_forever",
]
