"""Replay a record (or samples from stdin) through a :class:`StreamDetector`, as a monitor would.

``medseq monitor BUNDLE --record PATH`` cuts one lead of the record into chunks of
``chunk_s`` seconds and feeds them to the detector one after the other, printing each
quality change and alert as it becomes known (and each beat with ``--beats``). With
``speed=N`` the replay waits so that N seconds of record pass per second of wall time
(``speed=1`` is real time); ``speed=0``, the default, replays as fast as the machine can.
Samples read from stdin (one value in mV per line, ``--record -``) need ``--fs``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

import numpy as np

from medseq.monitoring.af_model import AFModel
from medseq.monitoring.beat_model import BeatClassifier, BeatModel
from medseq.monitoring.detector import StreamDetector, StreamOutput
from medseq.monitoring.records import RecordError, read_record


def clock(seconds: float) -> str:
    """``HH:MM:SS.s`` of a time on the stream's clock."""
    minutes, s = divmod(float(seconds), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours:02d}:{minutes:02d}:{s:04.1f}"


def stdin_chunks(stream: TextIO, chunk: int) -> Iterator[np.ndarray]:
    """Chunks of ``chunk`` samples from a text stream of one number per line (mV; ``nan``
    allowed for a missing sample). A line that is not a number is an error naming it."""
    values: list[float] = []
    for number, line in enumerate(stream, start=1):
        text = line.strip()
        if not text:
            continue
        try:
            values.append(float(text))
        except ValueError:
            raise RecordError(f"stdin line {number}: {text[:40]!r} is not a number") from None
        if len(values) == chunk:
            yield np.asarray(values)
            values = []
    if values:
        yield np.asarray(values)


def _lines(out: StreamOutput, show_beats: bool, fs_hz: float) -> Iterator[str]:
    for change in out.quality:
        yield f"[{clock(change.sample / fs_hz)}] QUALITY {change.state}: {change.reason}"
    for beat in out.beats if show_beats else ():
        p = max(beat.probabilities)
        yield f"[{clock(beat.time_s)}] beat {beat.label} p={p:.3f} quality={beat.quality}"
    for alert in out.alerts:
        began = f" (began {clock(alert.start_s)})" if alert.kind == "onset" else ""
        why = f": {alert.reason}" if alert.reason else ""
        yield f"[{clock(alert.reported_s)}] ALERT {alert.kind} {alert.episode}{began}{why}"


def monitor(
    bundle: str | Path,
    record: str | Path,
    *,
    speed: float = 0.0,
    chunk_s: float = 1.0,
    lead: str | None = None,
    fs_hz: float | None = None,
    show_beats: bool = False,
    stdin: TextIO | None = None,
    runtime: str = "numpy",
    af_model: str | Path | None = None,
) -> Iterator[str]:
    """Lines to print while replaying ``record`` (``"-"``: ``stdin``) through ``bundle``.

    ``af_model``: an AF model JSON (``benchmarks/train_af_rr.py``) whose probability
    replaces the RR-irregularity rule as AF evidence. ``runtime`` runs the beat model in
    ``"numpy"`` (the bundle's weights) or ``"onnx"`` (its ``model.onnx`` from ``medseq
    export --format onnx``, by ONNX Runtime).

    Raises
    ------
    ValueError
        On a bad option (speed < 0, chunk_s <= 0, stdin without fs_hz, unknown runtime), a
        bundle that cannot stream, or an unreadable record (:class:`RecordError`).
    """
    if speed < 0 or chunk_s <= 0:
        raise ValueError(f"speed must be >= 0 and chunk_s > 0, got {speed}, {chunk_s}")
    started = time.perf_counter()
    classifier = load_beat_model(bundle, runtime)
    name, chunks, fs = _source(record, classifier, lead, fs_hz, chunk_s, stdin)
    detector = StreamDetector(classifier, fs, af_model=AFModel.load(af_model) if af_model else None)
    yield f"monitoring {name} at {fs:g} Hz with {Path(bundle)} (classes {classifier.class_names})"
    counts: Counter[str] = Counter()
    n_samples = n_alerts = 0
    for chunk in chunks:
        out = detector.push(chunk)
        n_samples += len(chunk)
        counts.update(b.label for b in out.beats)
        n_alerts += len(out.alerts)
        yield from _lines(out, show_beats, fs)
        if speed > 0:
            lag = n_samples / fs / speed - (time.perf_counter() - started)
            if lag > 0:
                time.sleep(lag)
    elapsed = time.perf_counter() - started
    seconds = n_samples / fs
    labels = ", ".join(f"{c} {counts[c]}" for c in classifier.class_names)
    yield (
        f"replayed {seconds:.1f} s in {elapsed:.2f} s ({seconds / max(elapsed, 1e-9):.0f}x "
        f"real time): {sum(counts.values())} beats ({labels}), {n_alerts} alerts"
    )


def load_beat_model(bundle: str | Path, runtime: str = "numpy") -> BeatModel:
    """The bundle's beat model run by ``runtime``: ``"numpy"`` or ``"onnx"``."""
    if runtime == "numpy":
        return BeatClassifier.from_bundle(bundle)
    if runtime == "onnx":
        from medseq.monitoring.onnx_model import OnnxBeatClassifier

        return OnnxBeatClassifier(bundle)
    raise ValueError(f"runtime must be 'numpy' or 'onnx', got {runtime!r}")


def _source(
    record: str | Path,
    classifier: BeatModel,
    lead: str | None,
    fs_hz: float | None,
    chunk_s: float,
    stdin: TextIO | None,
) -> tuple[str, Iterable[np.ndarray], float]:
    if str(record) == "-":
        if fs_hz is None or fs_hz <= 0 or stdin is None:
            raise ValueError("reading samples from stdin needs --fs (the sampling rate in Hz)")
        return "stdin", stdin_chunks(stdin, max(1, round(chunk_s * fs_hz))), fs_hz
    wanted = lead or classifier.featurizer_state.get("lead")
    try:
        rec = read_record(record, lead=wanted)
    except RecordError:
        if lead is not None:  # the user asked for this lead: say it is absent
            raise
        rec = read_record(record)  # the bundle's lead is absent: the first, as in training
    if fs_hz is not None and fs_hz != rec.fs_hz:
        raise ValueError(f"{record}: the header says {rec.fs_hz:g} Hz, --fs says {fs_hz:g} Hz")
    step = max(1, round(chunk_s * rec.fs_hz))
    chunks = (rec.samples[i : i + step] for i in range(0, len(rec.samples), step))
    return f"record {rec.name} lead {rec.lead}", chunks, rec.fs_hz
