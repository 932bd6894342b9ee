"""One stream's detector: quality, R peaks, beat labels and rhythm alerts, chunk by chunk.

:class:`StreamDetector` ties the causal parts together. Each call to :meth:`push` takes the
next samples of one lead, in physical units (mV), and returns what became known:

- signal-quality changes (:mod:`~medseq.monitoring.quality`);
- beats, each with its R peak, its class probabilities from the bundle's model and the
  quality of the second it lies in;
- alerts: onset and offset of rhythm episodes (V and S runs from the beat labels, atrial
  fibrillation from RR irregularity), or an episode cut short by bad signal and why.

Every output is tied to a sample index of the stream and decided from samples up to a fixed
delay after it, never from the end of a chunk; so the outputs do not depend on how the
stream was cut, and the record fed at once is the offline pass the stream must equal.

The stream's clock is the caller's: ``push(samples, start=...)`` says where the chunk
begins. A chunk that starts before the end of the previous one (overlap or out of order) is
refused; one that starts later is a gap: the missing samples are never invented, the
detector restarts after them (filters, R-peak levels, beat context) and reports the gap as
bad quality, so the clock is never shifted.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from medseq.monitoring.af_model import AFModel
from medseq.monitoring.atrial import AtrialActivity
from medseq.monitoring.beat_features import StreamingBeatFeatures
from medseq.monitoring.beat_model import BeatModel
from medseq.monitoring.episodes import Alert, EpisodeRule, EpisodeTracker, RRIrregularity
from medseq.monitoring.qrs import StreamingQRSDetector
from medseq.monitoring.quality import QualityChange, QualitySettings, SignalQuality


class StreamError(ValueError):
    """A chunk that cannot belong to the stream (overlapping, out of order, bad shape)."""


def checked_chunk(
    samples: np.ndarray, start: int | None, next_sample: int
) -> tuple[np.ndarray, int]:
    """``samples`` as one float64 lead and the sample it starts at (default ``next_sample``);
    a chunk of another shape, or one that overlaps what the stream already has, is refused."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise StreamError(f"a chunk must be one lead, shape (n,), got shape {x.shape}")
    first = next_sample if start is None else int(start)
    if first < next_sample:
        raise StreamError(
            f"chunk starts at sample {first} but the stream is already at sample "
            f"{next_sample}: chunks must not overlap or arrive out of order"
        )
    return x, first


@dataclass(frozen=True)
class MonitorSettings:
    """Episode rules and quality thresholds of a :class:`StreamDetector`.

    ``run_classes`` names the bundle classes whose runs are episodes (each must be one of
    the bundle's ``class_names``); AF opens when the RR irregularity is at least
    ``af_on`` for ``af_rule.min_on_s`` seconds and closes when it is below ``af_off``.
    """

    run_classes: tuple[str, ...] = ("V", "S")
    run_min_beats: int = 3
    run_off_beats: int = 2
    af_rule: EpisodeRule = field(
        default_factory=lambda: EpisodeRule("AF", 1, 1, min_on_s=10.0, min_off_s=10.0)
    )
    af_on: float = 0.6
    af_off: float = 0.35
    af_intervals: int = 24
    quality: QualitySettings = field(default_factory=QualitySettings)


def af_episode_rule(settings: MonitorSettings, af_model: AFModel | None) -> EpisodeRule:
    """The AF episode rule: ``settings.af_rule``, with the durations (``min_on_s``,
    ``min_off_s``) of the AF model's ``alert_rule`` when its file carries one, since they
    were chosen together with its thresholds (``benchmarks/select_af_rule.py``)."""
    if af_model is None or af_model.alert_rule is None:
        return settings.af_rule
    rule = af_model.alert_rule
    return replace(settings.af_rule, min_on_s=rule["min_on_s"], min_off_s=rule["min_off_s"])


@dataclass(frozen=True)
class Beat:
    """One classified beat: R peak (sample, seconds), label, probabilities, quality."""

    sample: int
    time_s: float
    label: str
    probabilities: tuple[float, ...]
    quality: str  # "good" or the reason the signal was bad


@dataclass
class StreamOutput:
    """What one :meth:`StreamDetector.push` made known."""

    beats: list[Beat] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    quality: list[QualityChange] = field(default_factory=list)


class StreamDetector:
    """Streaming beat labels and rhythm alerts for one single-lead ECG stream.

    Parameters
    ----------
    classifier : BeatModel
        The bundle's beat model: :meth:`BeatClassifier.from_bundle` (numpy), or
        :class:`~medseq.monitoring.onnx_model.OnnxBeatClassifier` (its ONNX export).
    fs_hz : float
        The stream's sampling rate.
    settings : MonitorSettings, optional
    af_model : AFModel, optional
        A trained AF model over the last RR intervals (:mod:`medseq.monitoring.af_model`):
        its probability, against its own ``threshold_on`` / ``threshold_off``, is the AF
        evidence instead of the RR-irregularity share (``af_on`` / ``af_off``). When the
        model file carries an ``alert_rule`` (the durations chosen with its thresholds), its
        ``min_on_s`` / ``min_off_s`` replace those of ``settings.af_rule``.
    """

    def __init__(
        self,
        classifier: BeatModel,
        fs_hz: float,
        settings: MonitorSettings | None = None,
        af_model: AFModel | None = None,
    ) -> None:
        self.settings = settings or MonitorSettings()
        missing = [c for c in self.settings.run_classes if c not in classifier.class_names]
        if missing:
            raise ValueError(
                f"run_classes {missing} are not classes of the bundle {classifier.class_names}"
            )
        self.fs_hz = float(fs_hz)
        self.classifier = classifier
        self.qrs = StreamingQRSDetector(fs_hz)
        self.features = StreamingBeatFeatures(fs_hz, classifier.featurizer_state)
        self.quality = SignalQuality(fs_hz, self.settings.quality)
        s = self.settings
        self.runs = {
            c: EpisodeTracker(EpisodeRule(f"{c} run", s.run_min_beats, s.run_off_beats))
            for c in s.run_classes
        }
        self.af = EpisodeTracker(af_episode_rule(s, af_model))
        self.irregularity = RRIrregularity(s.af_intervals)
        self.af_model = af_model
        self.atrial: AtrialActivity | None = None
        if af_model is not None:
            af_model.reset()
            if af_model.needs_atrial:
                self.atrial = AtrialActivity(fs_hz)
        self._p_corr: dict[int, float] = {}  # P-wave correlation per R peak, until released
        self.next_sample = 0
        self._started = False
        self._last_finite = 0.0
        self._changes: list[QualityChange] = []  # recent quality changes, by sample
        self._held: deque[Beat] = deque()  # beats waiting for their second's quality
        self._prev_beat: int | None = None
        self._suppressed = ""

    def push(self, samples: np.ndarray, start: int | None = None) -> StreamOutput:
        """Feed the next chunk of samples (mV; NaN allowed) starting at sample ``start``
        (default: right after the previous chunk)."""
        x, start = checked_chunk(samples, start, self.next_sample)
        out = StreamOutput()
        if not self._started:
            self._started = True
            self.qrs.offset = start
            self.quality.restart(start, gap=False)
        elif start > self.next_sample:
            self._restart(start, out)
        self.next_sample = start + len(x)
        changes = self.quality.push(x)
        self._changes += changes
        del self._changes[:-64]
        out.quality += changes
        filled = self._hold_finite(x)
        peaks = self.qrs.push(filled)
        if self.atrial is not None:
            values = self.atrial.push(filled, start, peaks)
            self._p_corr.update(zip(peaks.tolist(), values.tolist(), strict=True))
        positions, features = self.features.push(filled, start, peaks)
        probabilities = self.classifier.push(features)
        for p, prob in zip(positions, probabilities, strict=True):
            label = self.classifier.class_names[int(np.argmax(prob))]
            self._held.append(Beat(int(p), p / self.fs_hz, label, tuple(map(float, prob)), ""))
        self._release(out)
        return out

    def _hold_finite(self, x: np.ndarray) -> np.ndarray:
        """NaN replaced by the last finite value (the filters must not see NaN)."""
        finite = np.isfinite(x)
        filled = x
        if not finite.all():
            idx = np.where(finite, np.arange(len(x)), -1)
            np.maximum.accumulate(idx, out=idx)
            filled = np.where(idx >= 0, x[np.maximum(idx, 0)], self._last_finite)
        if finite.any():
            self._last_finite = float(x[np.flatnonzero(finite)[-1]])
        return filled

    def _restart(self, start: int, out: StreamOutput) -> None:
        """Samples ``next_sample .. start`` are missing: restart every stateful part."""
        self.qrs.reset()
        self.qrs.offset = start
        self.features.reset()
        self.classifier.reset()
        self._reset_af()
        self._prev_beat = None
        self.quality.restart(start, gap=True)
        self._release(out, flush=True)

    def _quality_at(self, sample: int) -> str:
        i = bisect.bisect_right([c.sample for c in self._changes], sample) - 1
        if i < 0 or self._changes[i].state == "good":
            return "good"
        return self._changes[i].reason

    def _release(self, out: StreamOutput, *, flush: bool = False) -> None:
        """Pass on the beats whose second's quality is known, in order."""
        known = self.quality.known_until
        while self._held and (flush or self._held[0].sample < known):
            beat = self._held.popleft()
            quality = self._quality_at(beat.sample)
            beat = Beat(beat.sample, beat.time_s, beat.label, beat.probabilities, quality)
            out.beats.append(beat)
            out.alerts += self._episodes(beat)

    def _episodes(self, beat: Beat) -> list[Alert]:
        alerts: list[Alert] = []
        p_corr = self._p_corr.pop(beat.sample, float("nan"))
        if len(self._p_corr) > 64:  # peaks never released as beats (cut by a gap)
            self._p_corr = {k: v for k, v in self._p_corr.items() if k > beat.sample}
        trackers = [*self.runs.values(), self.af]
        if beat.quality != "good":
            if not self._suppressed:
                alerts += [a for t in trackers if (a := t.suppress(beat.time_s, beat.quality))]
                self._reset_af()
                self._prev_beat = None
            self._suppressed = beat.quality
            return alerts
        self._suppressed = ""
        for name, tracker in self.runs.items():
            if (alert := tracker.update(beat.time_s, beat.label == name)) is not None:
                alerts.append(alert)
        if self._prev_beat is not None:
            evidence = self._af_evidence((beat.sample - self._prev_beat) / self.fs_hz, p_corr)
            alert = None if evidence is None else self.af.update(beat.time_s, evidence)
            if alert is not None:
                alerts.append(alert)
        self._prev_beat = beat.sample
        return alerts

    def _af_evidence(self, rr_s: float, p_corr: float) -> bool | None:
        """Whether the last RR intervals (and, format 3, P waves) look like AF (None until
        there are enough)."""
        if self.af_model is not None:
            p = self.af_model.update(rr_s, p_corr)
            if p is None:
                return None
            m = self.af_model
            return p >= (m.threshold_off if self.af.open else m.threshold_on)
        share = self.irregularity.update(rr_s)
        if share is None:
            return None
        s = self.settings
        return share >= (s.af_off if self.af.open else s.af_on)

    def _reset_af(self) -> None:
        self.irregularity.reset()
        if self.af_model is not None:
            self.af_model.reset()
