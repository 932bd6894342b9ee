"""Causal QRS detection on a stream: Pan-Tompkins with its state carried across chunks.

Pan and Tompkins (1985) detect QRS complexes with a 5-15 Hz band-pass, a five-point
derivative, squaring, a 150 ms moving-window integral (MWI) and adaptive signal and noise
peak levels, with a T-wave check and a search back for a missed beat after 1.66 mean RR.
Every step is causal, so it can run on samples as they arrive. Here each step keeps the
state it needs (filter conditions, the last samples of each buffer, the peak levels, the
candidates since the last beat), and every decision is tied to a sample index of the stream
rather than to the end of a chunk. Hence a record fed in chunks of any size gives the same
R peaks as the record fed at once (the offline pass), and each chunk costs time in
proportion to its own length only: the buffers hold a fixed span of the most recent samples.

A candidate (a local maximum of the MWI over +-200 ms) is decided when the 200 ms after it
have arrived; its R peak is placed at the largest deviation of the raw samples from their
mean over the 250 ms before the MWI maximum. A beat is therefore reported about 0.2-0.45 s
after its R peak, or up to 1.66 mean RR later when it is found by the search back.

Reference: Pan J, Tompkins WJ. A real-time QRS detection algorithm. IEEE Trans Biomed Eng
1985;32(3):230-236.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from medseq.monitoring.dsp import StreamingFIR, max_filter
from medseq.monitoring.filters import CausalBandpass


@dataclass(frozen=True)
class _Candidate:
    mwi_index: int  # absolute sample index of the MWI maximum
    value: float  # MWI value there
    slope: float  # largest |derivative| over the 150 ms before it (T-wave check)
    r_index: int  # refined R-peak position (absolute)


class StreamingQRSDetector:
    """R peaks of one ECG lead from chunks of samples, equal to one pass over the record.

    Parameters
    ----------
    fs_hz : float
        Sampling rate of the stream (Hz).
    learn_s : float, default=2.0
        Span at the start whose MWI sets the first signal and noise levels.
    refractory_s : float, default=0.2
        No second QRS within this time of the last one.

    Examples
    --------
    >>> import numpy as np
    >>> det = StreamingQRSDetector(fs_hz=360.0)
    >>> det.push(np.zeros(360)).tolist()
    []
    """

    def __init__(self, fs_hz: float, *, learn_s: float = 2.0, refractory_s: float = 0.2) -> None:
        if not fs_hz > 0:
            raise ValueError(f"StreamingQRSDetector: fs_hz must be > 0, got {fs_hz!r}")
        self.fs_hz = float(fs_hz)
        self.bandpass = CausalBandpass(fs_hz, 5.0, 15.0, order=2)
        self.derivative = StreamingFIR(np.array([2.0, 1.0, 0.0, -1.0, -2.0]) * fs_hz / 8.0)
        self.mwi_width = max(1, round(0.15 * fs_hz))
        self.integrator = StreamingFIR(np.full(self.mwi_width, 1.0 / self.mwi_width))
        self.half = max(1, round(refractory_s * fs_hz))  # +-half: candidate neighbourhood
        self.refractory = self.half
        self.t_wave = round(0.36 * fs_hz)
        self.refine = round(0.25 * fs_hz)
        self.learn = max(round(learn_s * fs_hz), 2 * self.half + 1)
        self.keep = self.learn + self.refine + 2 * self.half + 4
        self.reset()

    def reset(self) -> None:
        """Start over (a new stream, or after a gap): filters, buffers and levels."""
        self.bandpass.reset()
        self.derivative.reset()
        self.integrator.reset()
        self.n_seen = 0  # samples received since the (re)start
        self.offset = 0  # absolute index of the (re)start in the caller's clock
        self._start = 0  # stream index of buffer element 0
        self._raw = np.zeros(0)
        self._mwi = np.zeros(0)
        self._slope = np.zeros(0)
        self._next = 0  # first stream index not yet tested as a candidate
        self._queue: deque[_Candidate] = deque()
        self._pending: list[_Candidate] = []  # noise candidates since the last QRS
        self.spki = self.npki = 0.0
        self._learned = False
        self._last: _Candidate | None = None
        self._rr: deque[int] = deque(maxlen=8)
        self._rr_sum = 0  # integer sum of _rr: exact, so the mean is chunk-independent
        self._deadline = np.inf

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Feed the next samples; return the R peaks decided meanwhile (absolute indices).

        Parameters
        ----------
        samples : ndarray of shape (n,)
            The next ``n`` samples of the lead, finite (the caller replaces NaN first).

        Returns
        -------
        ndarray of shape (k,), int64
            R-peak sample indices in the stream's clock (``offset`` + index since the
            restart), increasing over successive calls.
        """
        x = np.asarray(samples, dtype=np.float64).ravel()
        if len(x) == 0:
            return np.zeros(0, np.int64)
        bp = self.bandpass(x)
        slope = np.abs(self.derivative(bp))
        mwi = self.integrator(slope * slope)
        self._raw = np.concatenate([self._raw, x])
        self._slope = np.concatenate([self._slope, slope])
        self._mwi = np.concatenate([self._mwi, mwi])
        self.n_seen += len(x)
        if not self._learned:
            if self.n_seen < self.learn:
                return np.zeros(0, np.int64)
            first = self._mwi[: self.learn]
            self.spki, self.npki = float(first.max()) / 3.0, float(first.mean()) / 2.0
            self._learned = True
        self._find_candidates()
        peaks = self._decide(upto=self.n_seen - self.half)
        self._trim()
        return np.asarray(peaks, dtype=np.int64) + self.offset

    def _find_candidates(self) -> None:
        """Queue the local MWI maxima (+-``half``) at indices ``_next .. n_seen - half``."""
        lo, hi = max(self._next, self.half), self.n_seen - self.half
        if hi <= lo:
            return
        h = self.half
        seg = self._mwi[lo - h - self._start : hi + h - self._start]
        centred = max_filter(seg, 2 * h + 1)  # max of seg[i - h : i + h + 1]
        left = max_filter(seg, h)[: hi - lo]  # max of seg[i - h // 2 : i - h // 2 + h]
        mid = seg[h:-h]
        for j in np.flatnonzero((mid >= centred) & (mid > left) & (mid > 0)):
            self._queue.append(self._candidate(lo + int(j)))
        self._next = hi

    def _candidate(self, i: int) -> _Candidate:
        b = i - self._start
        lo_slope = max(0, b - self.mwi_width)
        lo_raw = max(0, b - self.refine)
        window = self._raw[lo_raw : b + 1]
        r = lo_raw + int(np.argmax(np.abs(window - window.mean())))
        return _Candidate(
            mwi_index=i,
            value=float(self._mwi[b]),
            slope=float(self._slope[lo_slope : b + 1].max()),
            r_index=r + self._start,
        )

    def _decide(self, upto: int) -> list[int]:
        """Run the decisions, in time order, for everything known before index ``upto``."""
        peaks: list[int] = []
        while True:
            if self._queue and self._queue[0].mwi_index < min(self._deadline, upto):
                self._classify(self._queue.popleft(), peaks)
            elif self._deadline < upto:
                self._search_back(peaks)
            else:
                return peaks

    def _threshold(self) -> float:
        return self.npki + 0.25 * (self.spki - self.npki)

    def _classify(self, c: _Candidate, peaks: list[int]) -> None:
        last = self._last
        is_qrs = c.value > self._threshold()
        if is_qrs and last is not None:
            gap = c.mwi_index - last.mwi_index
            if gap <= self.refractory or c.r_index <= last.r_index:
                is_qrs = False
            elif gap < self.t_wave and c.slope < 0.5 * last.slope:
                is_qrs = False  # a T wave: half the slope of the QRS before it
        if is_qrs:
            self.spki = 0.125 * c.value + 0.875 * self.spki
            self._accept(c, peaks)
        else:
            self.npki = 0.125 * c.value + 0.875 * self.npki
            self._pending.append(c)
            del self._pending[:-64]

    def _accept(self, c: _Candidate, peaks: list[int]) -> None:
        if self._last is not None:
            if len(self._rr) == self._rr.maxlen:
                self._rr_sum -= self._rr[0]
            self._rr.append(c.mwi_index - self._last.mwi_index)
            self._rr_sum += self._rr[-1]
        self._last = c
        self._pending = []
        peaks.append(c.r_index)
        self._deadline = c.mwi_index + 1.66 * self._mean_rr()

    def _mean_rr(self) -> float:
        return self._rr_sum / len(self._rr) if self._rr else self.fs_hz

    def _search_back(self, peaks: list[int]) -> None:
        """No QRS for 1.66 mean RR: take the largest earlier candidate above half the
        threshold; if there is none, halve the signal level and wait one more mean RR."""
        last = self._last
        limit = 0.5 * self._threshold()
        best = None
        for c in self._pending:
            if c.mwi_index >= self._deadline or c.value <= limit:
                continue
            if last is not None and (
                c.mwi_index - last.mwi_index <= self.refractory or c.r_index <= last.r_index
            ):
                continue
            if best is None or c.value > best.value:
                best = c
        if best is None:
            self.spki *= 0.5
            self._deadline += self._mean_rr()
            return
        later = [c for c in self._pending if c.mwi_index > best.mwi_index]
        self.spki = 0.25 * best.value + 0.75 * self.spki
        self._accept(best, peaks)
        self._pending = later

    def _trim(self) -> None:
        """Drop buffered samples no later step reads, so memory and cost stay bounded."""
        cut = self.n_seen - self.keep
        if not self._learned or cut <= self._start:
            return
        drop = cut - self._start
        self._raw, self._slope, self._mwi = self._raw[drop:], self._slope[drop:], self._mwi[drop:]
        self._start = cut
