"""Causal per-beat features for a beat bundle: each beat's vector from the past only.

The beat featurizer used in training (``medseq.features.signals.beat_featurizer``) reads
the whole record: a zero-phase band-pass, the record's mean RR interval and the record's
median beat as the template every beat is compared with. None of these exist on a stream.
This module computes the same columns causally:

========================  ===========================  ===================================
value                     offline (training)           streaming (here)
========================  ===========================  ===================================
band-pass 0.5-40 Hz       Butterworth, forward-backward Butterworth, forward only (causal)
mean RR                   over the whole record        over the last ``mean_rr_beats`` RR
template (median beat)    over the whole record        over the last ``template_beats``
post-RR                   next R peak                  next R peak (one beat of delay)
========================  ===========================  ===================================

so the model sees slightly different inputs from those it was trained on: the streamed beat
labels equal this module's offline pass (the same code over the whole record), and their
difference from the bundle's published figures is measured, not assumed
(``benchmarks/results/monitor.md``). Only the option set whose values can all be computed
causally is supported (rhythm and template matching, ``morphology="none"``); any other
featurizer option is refused with its name.

The columns are those of ``beat_rhythm.RR_RHYTHM_FEATURES`` then
``beat_template.TEMPLATE_FEATURES``, in that order, z-scored with the bundle's statistics.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction
from typing import Any

import numpy as np

from medseq.monitoring.dsp import PolyphaseResampler, firwin_kaiser, median
from medseq.monitoring.filters import CausalBandpass

#: Featurizer options that must have these values for a causal stream.
REQUIRED_OPTIONS: dict[str, Any] = {
    "kind": "beats",
    "morphology": "none",
    "local_ratios": False,
    "qrs_shape": False,
    "second_lead": False,
    "record_relative": False,
    "local_template": 0,
    "local_rhythm": 0,
}
N_COLUMNS = 11
QRS_HALF_S = 0.1
#: Seconds of band-passed samples kept for the windows of beats reported late.
RETAIN_S = 10.0


class UnsupportedBundle(ValueError):
    """The bundle cannot run on a stream; the message says which part and why."""


def check_featurizer(state: dict[str, Any]) -> None:
    """Refuse a featurizer state whose values cannot be computed causally (names it)."""
    for name, wanted in REQUIRED_OPTIONS.items():
        got = state.get(name, None if name != "kind" else "?")
        if got is None and name in ("qrs_shape", "second_lead", "record_relative"):
            got = False  # saved before the option existed: off
        if got is None and name in ("local_template", "local_rhythm"):
            got = 0
        if got != wanted:
            raise UnsupportedBundle(
                f"the bundle's featurizer has {name}={got!r}; streaming needs {name}={wanted!r} "
                "(only rhythm and template-matching beat features can be computed causally)"
            )
    if state.get("mean") is None or state.get("std") is None:
        raise UnsupportedBundle("the bundle's featurizer is not fitted (no mean/std)")
    if len(state["mean"]) != N_COLUMNS:
        raise UnsupportedBundle(
            f"the bundle's featurizer has {len(state['mean'])} columns, expected {N_COLUMNS}"
        )


def _row_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two vectors; 0 when either is flat."""
    a = a - a.sum() / len(a)
    b = b - b.sum() / len(b)
    den = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return float(np.dot(a, b)) / den if den > 0 else 0.0


class StreamingBeatFeatures:
    """Scaled feature vectors of the beats of one stream, each as soon as it is complete.

    A beat is complete when the next R peak is known (its post-RR interval) and the samples
    ``after_s`` past its own R peak have arrived (its window).

    Parameters
    ----------
    fs_hz : float
        Sampling rate of the stream.
    state : dict
        The bundle's featurizer state (``medseq.json`` ``featurizer``).
    mean_rr_beats : int, default=500
        RR intervals in the running mean RR (about 7 minutes at 70 bpm).
    template_beats : int, default=64
        Beats whose median window is the template.
    """

    def __init__(
        self,
        fs_hz: float,
        state: dict[str, Any],
        *,
        mean_rr_beats: int = 500,
        template_beats: int = 64,
    ) -> None:
        check_featurizer(state)
        self.fs_hz = float(fs_hz)
        self.bandpass = CausalBandpass(fs_hz, state["low_hz"], state["high_hz"], order=2)
        self.before = round(state["before_s"] * fs_hz)
        self.after = round(state["after_s"] * fs_hz)
        ratio = Fraction(state["segment_fs_hz"] / fs_hz).limit_denominator(1000)
        self.up, self.down = ratio.numerator, ratio.denominator
        # resample_poly's own anti-aliasing filter, designed once instead of per beat
        rate = max(self.up, self.down)
        self.fir = firwin_kaiser(2 * 10 * rate + 1, 1.0 / rate, beta=5.0)
        self.resampler = PolyphaseResampler(self.up, self.down, self.fir, self.before + self.after)
        self.width = round((state["before_s"] + state["after_s"]) * state["segment_fs_hz"])
        self.r_index = round(state["before_s"] * state["segment_fs_hz"])
        self.qrs_half = max(1, round(QRS_HALF_S * state["segment_fs_hz"]))
        self.mean = np.asarray(state["mean"], np.float64)
        self.std = np.asarray(state["std"], np.float64)
        self.mean_rr_beats, self.template_beats = mean_rr_beats, template_beats
        self.reset()

    def reset(self) -> None:
        """Start over (a new stream, or after a gap)."""
        self.bandpass.reset()
        self._buffer = np.zeros(0)
        self._start = 0  # absolute index of _buffer[0]
        self._end = 0  # absolute index after the last sample received
        self._origin: int | None = None  # absolute index of the first sample since reset
        self._waiting: deque[int] = deque()  # peaks whose window is not complete
        self._windows: deque[tuple[int, np.ndarray]] = deque()  # (peak, window) complete
        self._prev: int | None = None  # R peak of the last finished beat
        self._rr: deque[int] = deque(maxlen=self.mean_rr_beats)
        self._rr_sum = 0
        # the last template_beats windows, in a ring (the median ignores their order)
        # (width, template_beats): the median runs along contiguous rows
        self._windows_ring = np.zeros((self.width, self.template_beats))
        self._n_windows = 0

    def push(
        self, samples: np.ndarray, start: int, peaks: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Feed the next samples (first at absolute index ``start``) and the R peaks found.

        Returns
        -------
        positions : ndarray of shape (k,), int64
            R peaks of the beats completed by this call.
        features : ndarray of shape (k, 11), float64
            Their scaled feature vectors (clipped to +-10 as in training).
        """
        if self._origin is None:
            self._origin = self._start = self._end = start
        x = self.bandpass(np.asarray(samples, np.float64))
        self._buffer = np.concatenate([self._buffer, x])
        self._end += len(x)
        self._waiting.extend(int(p) for p in peaks)
        while self._waiting and self._waiting[0] + self.after <= self._end:
            p = self._waiting.popleft()
            self._windows.append((p, self._window(p)))
        self._trim()
        out_p, out_f = [], []
        while len(self._windows) >= 2 or (self._windows and self._waiting):
            p, small = self._windows.popleft()
            nxt = self._windows[0][0] if self._windows else self._waiting[0]
            out_p.append(p)
            out_f.append(self._features(p, nxt, small))
        if not out_p:
            return np.zeros(0, np.int64), np.zeros((0, N_COLUMNS))
        return np.asarray(out_p, np.int64), np.stack(out_f)

    def _window(self, p: int) -> np.ndarray:
        """The beat's band-passed window, resampled to the stored rate (``width`` values)."""
        lo, hi = p - self.before, p + self.after
        pad = max(0, self._start - lo)
        seg = self._buffer[max(lo, self._start) - self._start : hi - self._start]
        if pad:
            seg = np.concatenate([np.zeros(pad), seg])
        small = self.resampler(seg)[: self.width]  # resample_poly(seg, up, down, window=fir)
        if len(small) < self.width:
            small = np.pad(small, (0, self.width - len(small)))
        return small

    def _trim(self) -> None:
        """Keep ``RETAIN_S`` of samples: a beat found by the QRS search back arrives up to
        a few seconds after its R peak and still needs its window."""
        oldest = self._waiting[0] - self.before if self._waiting else self._end
        cut = min(oldest, self._end - round(RETAIN_S * self.fs_hz))
        if cut > self._start:
            self._buffer = self._buffer[cut - self._start :]
            self._start = cut

    def _features(self, p: int, nxt: int, small: np.ndarray) -> np.ndarray:
        post = nxt - p
        pre = p - self._prev if self._prev is not None else post
        self._prev = p
        if len(self._rr) == self._rr.maxlen:
            self._rr_sum -= self._rr[0]
        self._rr.append(post)
        self._rr_sum += post
        mean = self._rr_sum / len(self._rr)
        self._windows_ring[:, self._n_windows % self.template_beats] = small
        self._n_windows += 1
        n = min(self._n_windows, self.template_beats)
        template = median(self._windows_ring[:, :n], axis=1)
        values = np.array(
            [
                pre / mean,
                post / mean,
                0.0,
                0.0,
                0.0,
                mean / self.fs_hz,
                pre / self.fs_hz,
                (post - pre) / mean,
                *self._template_values(small, template),
            ]
        )
        return np.clip((values - self.mean) / self.std, -10.0, 10.0)

    def _template_values(self, small: np.ndarray, template: np.ndarray) -> tuple[float, ...]:
        """QRS and window correlation with the template, deviation RMS over its RMS."""
        qrs = slice(max(0, self.r_index - self.qrs_half), self.r_index + self.qrs_half + 1)
        deviation = small - template
        rms_template = float(np.sqrt(np.dot(template, template) / len(template)))
        rms_dev = float(np.sqrt(np.dot(deviation, deviation) / len(deviation)))
        ratio = rms_dev / rms_template if rms_template > 0 else 0.0
        return (
            _row_correlation(small[qrs], template[qrs]),
            _row_correlation(small, template),
            ratio,
        )
