"""Signal streams: one streaming detector per stream, durable, bounded in memory.

:class:`SignalStreams` is what the ``/v1/streams`` routes call. A stream is opened with
its sampling rate (checked against the rates the dataset spec accepts for the bundle),
then receives chunks of samples, each placed on the stream's clock by its start sample
index. A chunk is applied by the stream's
:class:`~medseq.monitoring.detector.StreamDetector` and written with its acknowledgement
and alerts in one transaction (:class:`~medseq.serving.signal_store.SignalStore`) before
the answer: an acknowledged chunk survives ``kill -9``.

The detectors are held in a least-recently-used cache of ``max_cached`` streams. One
that is evicted, or lost with the process, is rebuilt from its last checkpoint plus a
replay of the chunks after it (at most ``checkpoint_every``), which gives the same
detector state, bit for bit, so the restarted service continues with identical outputs.

The clock is never shifted: a chunk that starts before the stream's next sample
(overlapping, out of order, a different retry) is refused (409); one that starts later
is a gap, which the detector reports as a signal-quality state (``gap``) and restarts
after; a gap longer than ``max_gap_s`` is refused (422) since it more likely is a wrong
start index than a monitor switched off for hours. NaN samples (``null`` in JSON, ``E``
in FHIR) are a signal-quality state (``nan``), not an error.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from medseq.serving.signal_state import restore, snapshot
from medseq.serving.signal_store import Ack, ChunkRecord, SignalStore, StoredStream

logger = logging.getLogger(__name__)

#: Two sampling rates closer than this (relative) are the same rate: a FHIR period in
#: milliseconds written with three decimals (2.778 ms for 360 Hz) is 0.01 % off.
FS_RTOL = 1e-3


class StreamNotFound(LookupError):
    """No open stream of that id (404)."""


class StreamConflict(ValueError):
    """The chunk cannot be applied in the stream's present state (409)."""


class StreamInputError(ValueError):
    """A chunk or an opening that is wrong in itself (422); ``field`` names the field."""

    def __init__(self, field: str, msg: str) -> None:
        super().__init__(msg)
        self.field = field


@dataclass(frozen=True)
class Chunk:
    """One request's samples, placed on the stream's clock.

    ``start`` is the sample index of ``samples[0]``; or ``start_time`` is the time of
    that sample (converted with the stream's ``start_time`` and rate). ``fs_hz`` is the
    rate the sender says it samples at (checked against the stream's).
    """

    samples: np.ndarray
    start: int | None = None
    start_time: datetime | None = None
    fs_hz: float | None = None
    key: str | None = None  # idempotency key; default: the start index

    def fingerprint(self, start: int) -> str:
        """Hash of the samples and of where they were placed (however the place was
        given: index or time): what a retry must repeat."""
        h = hashlib.sha256(np.ascontiguousarray(self.samples, "<f8").tobytes())
        h.update(f"|{start}".encode())
        return h.hexdigest()


@dataclass
class _Live:
    """An open stream in memory."""

    stream_id: str
    fs_hz: float
    lead: str
    start_time: str | None
    detector: Any
    next_sample: int
    seq: int
    checkpoint_seq: int
    summary: dict[str, Any]


def _summary() -> dict[str, Any]:
    return {
        "n_beats": 0, "label_counts": {}, "last_beat": None,
        "quality": {"state": "good", "reason": "", "since_sample": 0},
        "open_episodes": [], "n_alerts": 0,
    }  # fmt: skip


def _beat(b: Any, class_names: Sequence[str]) -> dict[str, Any]:
    return {
        "sample": b.sample, "time_s": b.time_s, "label": b.label,
        "probabilities": dict(zip(class_names, b.probabilities, strict=True)),
        "quality": b.quality,
    }  # fmt: skip


def _alert(a: Any, fs_hz: float) -> dict[str, Any]:
    return {
        "kind": a.kind, "episode": a.episode, "start_s": a.start_s,
        "reported_s": a.reported_s, "reason": a.reason,
        "start_sample": round(a.start_s * fs_hz), "reported_sample": round(a.reported_s * fs_hz),
    }  # fmt: skip


class SignalStreams:
    """The open signal streams of a service (see the module doc).

    Parameters
    ----------
    make_detector : callable ``(fs_hz) -> StreamDetector``
        A fresh detector for a stream (the spec's signal-streaming part builds it from
        the bundle).
    store : SignalStore
    version : str
        The served model's version; a stream stored under another version is refused.
    fs_hz : sequence of float
        Sampling rates the bundle accepts.
    lead : str
        The lead the bundle reads.
    class_names : sequence of str
    lead_names : sequence of str, default=()
        Other names of that lead a stream may give (MLII for MIT-BIH + SVDB's ``ECG1``).
    max_cached : int, default=1000
        Detectors kept in memory.
    checkpoint_every : int, default=30
        Chunks between checkpoints (each about 80 KB); also the most chunks replayed
        to rebuild an evicted stream.
    max_chunk_s : float, default=60
        Longest chunk, in seconds of signal.
    max_gap_s : float, default=3600
        Longest gap accepted between chunks.
    publish : callable ``(alerts) -> None``, optional
        Called with the committed alerts (for the SSE feed).
    """

    def __init__(
        self,
        make_detector: Callable[[float], Any],
        store: SignalStore,
        version: str,
        *,
        fs_hz: Sequence[float],
        lead: str,
        class_names: Sequence[str],
        lead_names: Sequence[str] = (),
        max_cached: int = 1000,
        checkpoint_every: int = 30,
        max_chunk_s: float = 60.0,
        max_gap_s: float = 3600.0,
        publish: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        if max_cached < 1 or checkpoint_every < 1:
            raise ValueError("max_cached and checkpoint_every must be >= 1")
        self.make_detector = make_detector
        self.store = store
        self.version = version
        self.rates = tuple(float(f) for f in fs_hz)
        self.lead = lead
        self.lead_names = (lead, *lead_names)  # what a stream may call the bundle's lead
        self.class_names = list(class_names)
        self.max_cached = max_cached
        self.checkpoint_every = checkpoint_every
        self.max_chunk_s = max_chunk_s
        self.max_gap_s = max_gap_s
        self.publish = publish
        #: Called with (stream_id, start, samples, fs_hz) after each committed chunk (the
        #: monitor page's recent-samples buffer, :mod:`medseq.serving.monitor_page`).
        self.listeners: list[Callable[[str, int, np.ndarray, float], None]] = []
        self._live: OrderedDict[str, _Live] = OrderedDict()
        self._templates: dict[float, Any] = {}
        self._lock = threading.RLock()

    # --- opening and reading -------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {
            "supported": True, "fs_hz": list(self.rates), "lead": self.lead, "units": "mV",
            "class_names": self.class_names, "max_chunk_s": self.max_chunk_s,
            "max_gap_s": self.max_gap_s, "checkpoint_every": self.checkpoint_every,
        }  # fmt: skip

    def _rate(self, fs_hz: float, field: str) -> float:
        for rate in self.rates:
            if abs(fs_hz - rate) <= FS_RTOL * rate:
                return rate
        raise StreamInputError(
            field,
            f"the bundle reads signals sampled at {', '.join(f'{r:g}' for r in self.rates)} Hz, "
            f"not {fs_hz:g} Hz: resample on the device or serve a bundle trained at this rate",
        )

    def open(
        self, stream_id: str, fs_hz: float, lead: str | None, start_time: datetime | None
    ) -> tuple[dict[str, Any], bool]:
        """Open a stream; (its state, True) when new. Re-opening with the same settings
        answers the open stream (idempotent); with others it is a conflict."""
        rate = self._rate(fs_hz, "fs_hz")
        if lead is not None and lead not in self.lead_names:
            names = " or ".join(self.lead_names)
            raise StreamInputError("lead", f"the bundle reads lead {names}, not {lead}")
        t0 = None if start_time is None else start_time.isoformat()
        with self._lock:
            live = self._get(stream_id)
            if live is not None:
                if live.fs_hz != rate or (t0 is not None and live.start_time not in (None, t0)):
                    raise StreamConflict(
                        "the stream is already open with another sampling rate or start_time; "
                        "close it (DELETE) or use another stream id"
                    )
                return self._state(live), False
            summary = _summary()
            self.store.open_stream(stream_id, self.version, rate, self.lead, t0, summary)
            live = _Live(stream_id, rate, self.lead, t0, self._fresh(rate), 0, 0, 0, summary)
            self._cache(live)
            return self._state(live), True

    def get(self, stream_id: str) -> dict[str, Any] | None:
        with self._lock:
            live = self._get(stream_id)
            return None if live is None else self._state(live)

    def close(self, stream_id: str) -> dict[str, Any] | None:
        """Delete the stream (rows, checkpoint, alerts); its last state, or None."""
        with self._lock:
            live = self._get(stream_id)
            if live is None:
                return None
            self._live.pop(stream_id, None)
            self.store.delete_stream(stream_id)
            return self._state(live)

    def sweep(self, retention_hours: float, now: float | None = None) -> int:
        """Close the streams without a chunk for more than ``retention_hours``; their count
        (the ``retention_hours`` setting, as for the ICU stays)."""
        before = (time.time() if now is None else now) - retention_hours * 3600.0
        deleted = 0
        for stream_id in self.store.idle_streams(before):
            with self._lock:
                if self.store.delete_stream(stream_id, idle_before=before):
                    self._live.pop(stream_id, None)
                    deleted += 1
        if deleted:
            logger.info("retention sweep: closed %d idle signal stream(s)", deleted)
        return deleted

    def alerts(self, stream_id: str | None, after: int = 0, limit: int = 1000) -> list[dict]:
        if stream_id is not None and self.get(stream_id) is None:
            raise StreamNotFound(stream_id)
        return self.store.alerts(stream_id, after, limit)

    def _state(self, live: _Live) -> dict[str, Any]:
        return {
            "stream_id": live.stream_id, "model_version": self.version, "fs_hz": live.fs_hz,
            "lead": live.lead, "start_time": live.start_time, "next_sample": live.next_sample,
            "seconds": live.next_sample / live.fs_hz, "n_chunks": live.seq, **live.summary,
        }  # fmt: skip

    # --- the cache -----------------------------------------------------------------

    def _fresh(self, fs_hz: float) -> Any:
        return self.make_detector(fs_hz)

    def _template(self, fs_hz: float) -> Any:
        if fs_hz not in self._templates:
            self._templates[fs_hz] = self._fresh(fs_hz)
        return self._templates[fs_hz]

    def _cache(self, live: _Live) -> None:
        self._live[live.stream_id] = live
        self._live.move_to_end(live.stream_id)
        while len(self._live) > self.max_cached:
            _, old = self._live.popitem(last=False)
            if old.seq > old.checkpoint_seq:  # the next load replays nothing
                state = snapshot(old.detector, self._template(old.fs_hz))
                self.store.save_checkpoint(old.stream_id, old.seq, state)

    def _get(self, stream_id: str) -> _Live | None:
        live = self._live.get(stream_id)
        if live is not None:
            self._live.move_to_end(stream_id)
            return live
        stored = self.store.load_stream(stream_id)
        if stored is None:
            return None
        live = self._rebuild(stored)
        self._cache(live)
        return live

    def _rebuild(self, stored: StoredStream) -> _Live:
        """Checkpoint + replay of the chunks after it: the detector as it was."""
        if stored.model_version != self.version:
            raise StreamConflict(
                f"the stream was opened with model {stored.model_version}, this service runs "
                f"{self.version}: close it (DELETE) and open it again"
            )
        detector = self._fresh(stored.fs_hz)
        if stored.checkpoint is not None:
            detector = restore(detector, *stored.checkpoint)
        for start, samples in stored.chunks:
            detector.push(samples, start=start)
        return _Live(
            stored.stream_id, stored.fs_hz, stored.lead, stored.start_time, detector,
            stored.next_sample, stored.seq, stored.checkpoint_seq, stored.summary,
        )  # fmt: skip

    def cached(self) -> int:
        return len(self._live)

    # --- chunks --------------------------------------------------------------------

    def push(self, stream_id: str, chunk: Chunk) -> tuple[Ack, bool]:
        """Apply one chunk; (acknowledgement, replayed). ``replayed``: a retry of a chunk
        already applied under the same key, answered with the stored acknowledgement. The
        acknowledgement carries its JSON text as stored: the answer's body, not encoded
        again."""
        with self._lock:
            live = self._get(stream_id)
            if live is None:
                raise StreamNotFound(stream_id)
            start, t0 = self._place(live, chunk)
            key = chunk.key or f"start:{start}"
            fingerprint = chunk.fingerprint(start)
            done = self.store.applied_chunk(stream_id, key)
            if done is not None:
                if done[0] != fingerprint:
                    raise StreamConflict(
                        f"a different chunk was already applied under the idempotency key "
                        f"{key!r}: chunks must not overlap, and a retry must repeat the same "
                        f"samples and start"
                    )
                return done[1], True
            self._check(live, chunk, start)
            try:
                return self._apply(live, chunk, start, t0, key, fingerprint), False
            except BaseException:
                # the detector may have advanced without the rows: forget it, so the next
                # request rebuilds it from what was committed
                self._live.pop(stream_id, None)
                raise

    def _place(self, live: _Live, chunk: Chunk) -> tuple[int, str | None]:
        """The chunk's start index (and the stream's clock origin, set by a first timed
        chunk)."""
        if chunk.fs_hz is not None:
            rate = self._rate(chunk.fs_hz, "fs_hz")
            if rate != live.fs_hz:
                raise StreamInputError(
                    "fs_hz", f"the stream was opened at {live.fs_hz:g} Hz, not {chunk.fs_hz:g} Hz"
                )
        if chunk.start is not None:
            return chunk.start, live.start_time
        if chunk.start_time is None:
            raise StreamInputError(
                "start", "a chunk needs its start sample index (start) or start_time"
            )
        if live.start_time is None:
            if live.next_sample:
                raise StreamInputError(
                    "start_time", "this stream's chunks are placed by start index, not by time"
                )
            return 0, chunk.start_time.isoformat()
        origin = datetime.fromisoformat(live.start_time)
        offset = (chunk.start_time - origin).total_seconds() * live.fs_hz
        if offset < -0.5:
            raise StreamConflict(
                "the chunk's time is before the stream's start_time: chunks must not overlap "
                "or arrive out of order"
            )
        return round(offset), live.start_time

    def _check(self, live: _Live, chunk: Chunk, start: int) -> None:
        n = len(chunk.samples)
        if n == 0 or n > self.max_chunk_s * live.fs_hz:
            limit = round(self.max_chunk_s * live.fs_hz)
            raise StreamInputError("samples", f"a chunk holds 1 to {limit} samples, got {n}")
        if start < live.next_sample:
            raise StreamConflict(
                f"the chunk starts at sample {start} but the stream is already at sample "
                f"{live.next_sample}: chunks must not overlap or arrive out of order"
            )
        gap = start - live.next_sample
        if live.seq and gap > self.max_gap_s * live.fs_hz:
            raise StreamInputError(
                "start",
                f"the chunk starts {gap / live.fs_hz:.0f} s after the stream's last sample, "
                f"more than max_gap_s={self.max_gap_s:g}: close this stream and open a new one",
            )

    def _checkpoint_due(self, stream_id: str, seq: int, checkpoint_seq: int) -> bool:
        """Whether chunk ``seq`` carries a checkpoint.

        Each stream checkpoints at its own phase of ``checkpoint_every`` (from a hash of its
        id), so streams opened together do not all snapshot in the same second: with 200
        streams every 30th second used to hold 200 snapshots at once, the 99th-percentile
        latency. A replay after a restart still covers at most ``checkpoint_every`` chunks.
        """
        if seq - checkpoint_seq >= self.checkpoint_every:
            return True
        phase = int.from_bytes(hashlib.blake2b(stream_id.encode(), digest_size=4).digest())
        return (seq + phase) % self.checkpoint_every == 0

    def _apply(
        self, live: _Live, chunk: Chunk, start: int, t0: str | None, key: str, fingerprint: str
    ) -> Ack:
        out = live.detector.push(chunk.samples, start=start)
        seq = live.seq + 1
        beats = [_beat(b, self.class_names) for b in out.beats]
        alerts = [_alert(a, live.fs_hz) for a in out.alerts]
        quality = [{"sample": q.sample, "state": q.state, "reason": q.reason} for q in out.quality]
        summary = _advance(live.summary, beats, alerts, quality)
        answer = {
            "stream_id": live.stream_id, "model_version": self.version, "start": start,
            "n_samples": len(chunk.samples), "next_sample": start + len(chunk.samples),
            "beats": beats, "quality": quality, "open_episodes": summary["open_episodes"],
        }  # fmt: skip
        due = self._checkpoint_due(live.stream_id, seq, live.checkpoint_seq)
        checkpoint = snapshot(live.detector, self._template(live.fs_hz)) if due else None
        record = ChunkRecord(
            live.stream_id, seq, start, chunk.samples, start + len(chunk.samples), t0,
            summary, key, fingerprint, answer, alerts, checkpoint,
        )  # fmt: skip
        ack = self.store.save_chunk(record)
        live.seq, live.next_sample, live.summary, live.start_time = (
            seq, record.next_sample, summary, t0
        )  # fmt: skip
        if checkpoint is not None:
            live.checkpoint_seq = seq
        for listen in self.listeners:
            listen(live.stream_id, start, chunk.samples, live.fs_hz)
        if ack.value["alerts"] and self.publish is not None:
            self.publish([{**a, "stream_id": live.stream_id} for a in ack.value["alerts"]])
        return ack


def _advance(
    summary: dict[str, Any], beats: list[dict], alerts: list[dict], quality: list[dict]
) -> dict[str, Any]:
    """The stream's summary after one chunk's outputs."""
    out = dict(summary)
    counts = dict(out["label_counts"])
    for b in beats:
        counts[b["label"]] = counts.get(b["label"], 0) + 1
    out["label_counts"] = counts
    out["n_beats"] = summary["n_beats"] + len(beats)
    if beats:
        out["last_beat"] = beats[-1]
    if quality:
        q = quality[-1]
        out["quality"] = {"state": q["state"], "reason": q["reason"], "since_sample": q["sample"]}
    episodes = list(out["open_episodes"])
    for a in alerts:
        if a["kind"] == "onset" and a["episode"] not in episodes:
            episodes.append(a["episode"])
        elif a["kind"] != "onset" and a["episode"] in episodes:
            episodes.remove(a["episode"])
    out["open_episodes"] = episodes
    out["n_alerts"] = summary["n_alerts"] + len(alerts)
    return out
