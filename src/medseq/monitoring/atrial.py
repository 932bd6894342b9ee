"""Atrial activity per beat: is there a P wave like the last beats' before this QRS?

RR intervals cannot tell atrial fibrillation from irregular ectopy (PVCs in couplets,
runs, without a full compensatory pause): both are irregular. What differs is the atrium.
In sinus rhythm, with or without ectopic beats, most beats follow a P wave of the same
shape at the same distance before the QRS; in AF there is none, only fibrillatory waves
with no fixed shape or timing. :class:`AtrialActivity` measures this per beat, causally:
the band-passed segment from ``segment_s[0]`` to ``segment_s[1]`` seconds before the R peak
(where the P wave lies for PR intervals of 0.12-0.20 s) is correlated with the median of the
same segment over the previous ``template_beats`` beats (Pearson correlation: baseline and
gain do not matter). Sinus beats give a high correlation, AF beats a low one; an ectopic
beat gives a low one too, but it is one beat among many in the AF model's window, whose
median the model uses (:mod:`medseq.monitoring.af_model`, format 3).

This is the P-wave-absence criterion of AF detectors that combine RR irregularity with
atrial activity, e.g. Ladavich S, Ghoraani B. Rate-independent detection of atrial
fibrillation by statistical modeling of atrial activity. Biomed Signal Process Control
2015;18:274-281 (P-wave presence against a model of the P wave). The values here (1-15 Hz,
0.30-0.08 s, 16 beats) are textbook P-wave timing, fixed before any evaluation.
"""

from __future__ import annotations

import numpy as np

from medseq.monitoring.dsp import median
from medseq.monitoring.filters import CausalBandpass


class AtrialActivity:
    """P-wave correlation of each beat with the running template of the previous beats.

    Parameters
    ----------
    fs_hz : float
        Sampling rate of the stream.
    segment_s : tuple of float, default=(0.30, 0.08)
        Start and end of the pre-QRS segment, in seconds before the R peak.
    template_beats : int, default=16
        Previous segments whose sample-wise median is the template.
    keep_s : float, default=10.0
        Seconds of band-passed signal kept for R peaks reported late by the QRS detector.

    Feed every chunk with :meth:`push` (the same samples the QRS detector sees) and the R
    peaks the detector returned for it: chunked and offline passes give the same values.
    """

    def __init__(
        self,
        fs_hz: float,
        segment_s: tuple[float, float] = (0.30, 0.08),
        template_beats: int = 16,
        keep_s: float = 10.0,
    ) -> None:
        if not segment_s[0] > segment_s[1] >= 0:
            raise ValueError(
                f"AtrialActivity: segment_s must be (start > end >= 0), got {segment_s}"
            )
        if template_beats < 2:
            raise ValueError(f"AtrialActivity: template_beats must be >= 2, got {template_beats}")
        self.fs_hz = float(fs_hz)
        self.segment_s, self.template_beats, self.keep_s = segment_s, template_beats, keep_s
        self._a = round(segment_s[0] * fs_hz)
        self._b = round(segment_s[1] * fs_hz)
        self.filter = CausalBandpass(fs_hz, 1.0, 15.0)
        self.reset()

    def reset(self, start: int = 0) -> None:
        """Forget the signal and the template; the next chunk starts at sample ``start``."""
        self.filter.reset()
        self._buf = np.zeros(0)
        self._buf_start = start  # stream sample of self._buf[0]
        self._ring = np.zeros((self._a - self._b, self.template_beats))
        self._n_segments = 0

    def push(self, x: np.ndarray, start: int, peaks: np.ndarray) -> np.ndarray:
        """Band-pass the chunk ``x`` (n,) that begins at stream sample ``start`` and return
        the P-wave correlation ``(len(peaks),)`` of the R peaks the QRS detector reported
        with it (stream samples, in order; their segments precede them, so they are here)."""
        if start != self._buf_start + len(self._buf):
            self.reset(start)
        self._buf = np.concatenate([self._buf, self.filter(x)])
        values = np.array([self.beat(int(p)) for p in peaks], np.float64)
        drop = max(0, len(self._buf) - round(self.keep_s * self.fs_hz))
        self._buf, self._buf_start = self._buf[drop:], self._buf_start + drop
        return values

    def beat(self, peak: int) -> float:
        """The P-wave correlation of the beat at stream sample ``peak`` (NaN while fewer than
        four previous segments make the template, or when the segment is not buffered)."""
        lo, hi = peak - self._a - self._buf_start, peak - self._b - self._buf_start
        if lo < 0 or hi > len(self._buf):
            return float("nan")
        seg = self._buf[lo:hi]
        n = min(self._n_segments, self.template_beats)
        value = float("nan")
        if n >= 4:
            template = median(self._ring[:, :n], axis=1)
            value = _correlation(seg, template)
        self._ring[:, self._n_segments % self.template_beats] = seg
        self._n_segments += 1
        return value


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two segments; 0 when either is flat."""
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return float(np.dot(a, b)) / den if den > 1e-12 else 0.0
