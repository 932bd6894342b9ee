"""Signal-quality state of one stream: is the trace an ECG, or a loose electrode?

A monitor that alarms on noise is switched off by the ward. Each second of the stream (a
block of ``fs`` samples on the stream's own clock, so the result does not depend on how the
samples were chunked) is checked for, in this order:

``nan``         missing values (the device sent NaN)
``gap``         samples missing from the stream (the caller's clock jumped ahead)
``lead_off``    the trace sits outside the physiological range: median ``|x|`` of the
                second >= ``lead_off_mv`` (an unattached electrode drifts to a rail)
``saturation``  clipping: a run of >= ``saturation_s`` identical values at the extreme of
                the last 2 s, in a trace that is not flat
``flat_line``   peak-to-peak amplitude over the last 2 s below ``flat_mv``

The state is ``"good"`` only after ``recover_s`` seconds in a row without any of these, so
a trace does not flicker between states; while it is not good, alerts are suppressed and
the reason is reported instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medseq.monitoring.dsp import median

REASONS = ("nan", "gap", "lead_off", "saturation", "flat_line")


@dataclass(frozen=True)
class QualitySettings:
    """Thresholds of :class:`SignalQuality` (physical units: mV and seconds)."""

    flat_mv: float = 0.05
    lead_off_mv: float = 4.5
    saturation_s: float = 0.05
    recover_s: float = 3.0


@dataclass(frozen=True)
class QualityChange:
    """The state changed at ``sample`` (start of the second that changed it)."""

    sample: int
    state: str  # "good" or "bad"
    reason: str  # one of REASONS, or "recovered"


class SignalQuality:
    """Per-second quality state of one lead, from chunks of samples (NaN allowed)."""

    def __init__(self, fs_hz: float, settings: QualitySettings | None = None) -> None:
        self.fs_hz = float(fs_hz)
        self.settings = settings or QualitySettings()
        self.block = max(1, round(fs_hz))
        self.saturation_run = max(2, round(self.settings.saturation_s * fs_hz))
        self.recover_blocks = max(1, round(self.settings.recover_s))
        self.state = "good"
        self.reason = "recovered"
        self._good_run = self.recover_blocks
        self._tail = np.zeros(0)  # the previous second (for the 2-s window)
        self._partial = np.zeros(0)  # samples of the current, incomplete second
        self._block_start = 0  # absolute index of the current second's first sample
        self._gap_pending = False

    @property
    def known_until(self) -> int:
        """Absolute index up to which (exclusive) every second has been assessed."""
        return self._block_start

    def restart(self, start: int, *, gap: bool) -> None:
        """Seconds are counted again from absolute index ``start`` (a new stream, or the
        first sample after missing ones; ``gap=True`` reports that second as a gap)."""
        self._tail = np.zeros(0)
        self._partial = np.zeros(0)
        self._block_start = start
        self._gap_pending = gap

    def push(self, samples: np.ndarray) -> list[QualityChange]:
        """Feed the next raw samples (NaN allowed); return the state changes they cause."""
        data = np.concatenate([self._partial, np.asarray(samples, np.float64)])
        changes: list[QualityChange] = []
        b = self.block
        while len(data) >= b:
            block, data = data[:b], data[b:]
            reason = self._reason(block, np.concatenate([self._tail, block]))
            change = self._update(self._block_start, reason)
            if change is not None:
                changes.append(change)
            self._tail = block
            self._block_start += b
        self._partial = data
        return changes

    def _reason(self, block: np.ndarray, window: np.ndarray) -> str | None:
        s = self.settings
        if np.isnan(block).any():
            return "nan"
        if self._gap_pending:
            self._gap_pending = False
            return "gap"
        if median(np.abs(block)) >= s.lead_off_mv:
            return "lead_off"
        finite = window[np.isfinite(window)]  # the previous second may hold NaN
        top, bottom = float(finite.max()), float(finite.min())
        if top - bottom < s.flat_mv:
            return "flat_line"
        if self._clipped(block, top, bottom):
            return "saturation"
        return None

    def _clipped(self, block: np.ndarray, top: float, bottom: float) -> bool:
        """A run of ``saturation_run`` equal samples at the window's maximum or minimum."""
        for extreme in (top, bottom):
            if np.count_nonzero(block == extreme) < self.saturation_run:
                continue  # too few samples at the extreme for a run: the common case
            at = np.concatenate([[0], (block == extreme).astype(np.int8), [0]])
            edges = np.flatnonzero(np.diff(at))
            if len(edges) and (edges[1::2] - edges[::2]).max() >= self.saturation_run:
                return True
        return False

    def _update(self, sample: int, reason: str | None) -> QualityChange | None:
        if reason is not None:
            self._good_run = 0
            if self.state != "bad" or self.reason != reason:
                self.state, self.reason = "bad", reason
                return QualityChange(sample, "bad", reason)
            return None
        self._good_run += 1
        if self.state == "bad" and self._good_run >= self.recover_blocks:
            self.state, self.reason = "good", "recovered"
            return QualityChange(sample, "good", "recovered")
        return None
