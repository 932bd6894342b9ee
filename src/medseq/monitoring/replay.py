"""Replay a record (or samples from stdin) through a :class:`StreamDetector`, as a monitor would.

``medseq monitor BUNDLE --record PATH`` cuts one lead of the record into chunks of
``chunk_s`` seconds and feeds them to the detector one after the other, printing each
quality change and alert as it becomes known (and each beat with ``--beats``). With
``speed=N`` the replay waits so that N seconds of record pass per second of wall time
(``speed=1`` is real time); ``speed=0``, the default, replays as fast as the machine can.
Samples read from stdin (one value in mV per line, ``--record -``) need ``--fs``.

A bundle trained on recordings brought to one rate stores it (``provenance["signal"]``,
:meth:`~medseq.datasets.signal_streaming.SignalStreaming.input_signal`, written at
training time): a record at another rate is resampled to it on the way in
(:class:`~medseq.monitoring.resampled.ResampledDetector`, the training resampler's
filter) and times stay on the record's clock. That field also names the primary lead's
other names (MLII for ``ECG1``), tried when the record has no lead of the featurizer's
name. A bundle saved before the field existed runs at the record's own rate, as before.
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
from medseq.monitoring.records import Record, RecordError, read_record
from medseq.monitoring.resampled import ResampledDetector
from medseq.serving.manifest import read_manifest


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
    signal = bundle_signal(bundle)
    name, chunks, fs = _source(record, classifier, lead, fs_hz, chunk_s, stdin, signal)
    af = AFModel.load(af_model) if af_model else None
    detector, note = _detector(classifier, fs, signal.get("fs_hz"), af)
    yield (
        f"monitoring {name} at {fs:g} Hz{note} with {Path(bundle)} "
        f"(classes {classifier.class_names})"
    )
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


def bundle_signal(bundle: str | Path) -> dict:
    """The bundle's ``provenance["signal"]`` (model input rate and lead), ``{}`` when the
    bundle predates it; a clear error when it is there but holds no usable rate."""
    signal = read_manifest(bundle, verify=False).get("provenance", {}).get("signal") or {}
    if not isinstance(signal, dict):
        raise ValueError(f"{bundle}: provenance['signal'] must be an object, got {signal!r}")
    rate = signal.get("fs_hz")
    if rate is not None and (
        isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0
    ):
        raise ValueError(
            f"{bundle}: provenance['signal']['fs_hz'] must be a rate > 0 in Hz or null, "
            f"got {rate!r}; retrain the bundle or remove the field to run at the record's rate"
        )
    return signal


def _detector(
    classifier: BeatModel, fs_hz: float, model_fs_hz: float | None, af: AFModel | None
) -> tuple[StreamDetector | ResampledDetector, str]:
    """The detector for a stream at ``fs_hz``: at the model's rate behind a resampler when
    the bundle states one that differs, else at the stream's own rate (older bundles)."""
    if model_fs_hz is None:  # saved before bundles recorded it: as before, but say so
        note = " (the bundle records no input rate: run at the record's own)"
        return StreamDetector(classifier, fs_hz, af_model=af), note
    if float(model_fs_hz) == fs_hz:
        return StreamDetector(classifier, fs_hz, af_model=af), ""
    inner = StreamDetector(classifier, float(model_fs_hz), af_model=af)
    return ResampledDetector(inner, fs_hz), f" (resampled to the model's {model_fs_hz:g} Hz)"


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
    signal: dict | None = None,
) -> tuple[str, Iterable[np.ndarray], float]:
    if str(record) == "-":
        if fs_hz is None or fs_hz <= 0 or stdin is None:
            raise ValueError("reading samples from stdin needs --fs (the sampling rate in Hz)")
        return "stdin", stdin_chunks(stdin, max(1, round(chunk_s * fs_hz))), fs_hz
    rec = _read_lead(record, lead, classifier, signal or {})
    if fs_hz is not None and fs_hz != rec.fs_hz:
        raise ValueError(f"{record}: the header says {rec.fs_hz:g} Hz, --fs says {fs_hz:g} Hz")
    step = max(1, round(chunk_s * rec.fs_hz))
    chunks = (rec.samples[i : i + step] for i in range(0, len(rec.samples), step))
    return f"record {rec.name} lead {rec.lead}", chunks, rec.fs_hz


def _read_lead(record: str | Path, lead: str | None, classifier: BeatModel, signal: dict) -> Record:
    """The lead asked for; else the featurizer's lead, or another name of it the bundle
    records (MLII for ``ECG1``); else the first, as in training."""
    if lead is not None:  # the user asked for this lead: say it is absent
        return read_record(record, lead=lead)
    names = [classifier.featurizer_state.get("lead"), signal.get("lead")]
    names += list(signal.get("lead_names") or [])
    for name in dict.fromkeys(n for n in names if isinstance(n, str) and n):
        try:
            return read_record(record, lead=name)
        except RecordError:
            continue
    return read_record(record)
