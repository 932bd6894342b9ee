"""A stream at one sampling rate run by a detector built for another: resampled on the way in.

A bundle trained on recordings brought to one rate (MIT-BIH + SVDB: 128 Hz, MIT-BIH's
360 Hz downsampled with :func:`scipy.signal.resample_poly`) reads a 360 Hz stream only
after the same resampling. :class:`StreamingResampler` computes exactly the samples
``resample_poly`` gives for the whole recording, each as soon as the inputs it depends on
have arrived (a fixed delay of half the anti-aliasing filter, about 80 ms at 360 -> 128 Hz),
so the stream fed in chunks of any size gives the resampled record of training.
:class:`ResampledDetector` puts it in front of a
:class:`~medseq.monitoring.detector.StreamDetector` at the bundle's rate and gives the
outputs back on the stream's clock (beat and quality sample indices at the stream's rate;
seconds are seconds).

numpy only (the edge package): the filter is ``resample_poly``'s own Kaiser-windowed FIR,
designed by :func:`~medseq.monitoring.dsp.firwin_kaiser`.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np

from medseq.monitoring.detector import StreamDetector, StreamOutput, checked_chunk
from medseq.monitoring.dsp import firwin_kaiser


def rate_ratio(fs_in_hz: float, fs_out_hz: float) -> tuple[int, int]:
    """``(up, down)`` of ``fs_out / fs_in``, as :func:`medseq.datasets.mitbih_svdb.resample`
    takes it (a fraction with a denominator up to 1000)."""
    ratio = Fraction(fs_out_hz / fs_in_hz).limit_denominator(1000)
    return ratio.numerator, ratio.denominator


class StreamingResampler:
    """``scipy.signal.resample_poly(x, up, down)`` of a stream, chunk by chunk.

    Output ``m`` is ``sum_k h[(m + p) down - k up] x[k]`` over the inputs ``k`` the filter
    ``h`` (zero-padded in front as ``resample_poly`` pads it) reaches; it is emitted once the
    last of those inputs has arrived. Values equal ``resample_poly`` over the whole input up
    to float rounding (the sums run in another order); the last outputs, which
    ``resample_poly`` computes by padding the end with zeros, wait for the next samples.

    Parameters
    ----------
    fs_in_hz, fs_out_hz : float
        The stream's rate and the rate to produce.
    """

    def __init__(self, fs_in_hz: float, fs_out_hz: float) -> None:
        up, down = rate_ratio(fs_in_hz, fs_out_hz)
        rate = max(up, down)
        h = firwin_kaiser(2 * 10 * rate + 1, 1.0 / rate, beta=5.0) * up
        half = (len(h) - 1) // 2
        pre_pad = down - half % down
        self.up, self.down = up, down
        self.pre_remove = (half + pre_pad) // down
        self.h = np.concatenate([np.zeros(pre_pad), h])
        self.n_taps = -(-len(self.h) // up)  # inputs that one output reads, at most
        self.reset()

    def reset(self) -> None:
        """Start a new input (after a gap): the next sample is input 0 again."""
        self._x = np.zeros(0)
        self._x0 = 0  # input index of _x[0]
        self.n_in = 0
        self.n_out = 0

    def push(self, x: np.ndarray) -> np.ndarray:
        """The outputs that the inputs so far complete, ``(k,)``, in order."""
        self._x = np.concatenate([self._x, np.asarray(x, dtype=np.float64)])
        self.n_in += len(x)
        end = (self.n_in * self.up - 1) // self.down - self.pre_remove + 1 if self.n_in else 0
        if end <= self.n_out:
            return np.zeros(0)
        a = (np.arange(self.n_out, end) + self.pre_remove) * self.down  # (M,)
        k = (a // self.up)[:, None] - np.arange(self.n_taps)[None, :]  # (M, T) inputs
        tap = a[:, None] - k * self.up
        valid = (k >= 0) & (tap < len(self.h))
        coef = np.where(valid, self.h[np.minimum(tap, len(self.h) - 1)], 0.0)
        values = self._x[np.clip(k - self._x0, 0, len(self._x) - 1)]
        y = np.einsum("mt,mt->m", coef, np.where(valid, values, 0.0))
        self.n_out = end
        first = max(0, (self.n_out + self.pre_remove) * self.down // self.up - self.n_taps + 1)
        if first > self._x0:  # inputs no later output reads
            self._x = self._x[first - self._x0 :]
            self._x0 = first
        return y


class ResampledDetector:
    """A :class:`StreamDetector` at ``detector.fs_hz`` fed a stream at ``fs_hz``.

    The stream is resampled by :class:`StreamingResampler`, rounded to float32 as the
    training records were (:func:`medseq.datasets.mitbih_svdb.resample`), and pushed to
    the detector; beat and quality-change samples come back on the stream's clock
    (``round(sample * fs_hz / detector.fs_hz)``). A chunk starting after the stream's last
    sample is a gap: the resampler restarts there and the detector sees the gap.

    Parameters
    ----------
    detector : StreamDetector
        Built at the bundle's rate.
    fs_hz : float
        The stream's rate.
    """

    def __init__(self, detector: StreamDetector, fs_hz: float) -> None:
        self.detector = detector
        self.fs_hz = float(fs_hz)
        self.resampler = StreamingResampler(self.fs_hz, detector.fs_hz)
        self.next_sample = 0
        self._started = False
        self._origin = 0  # detector sample of the resampler's input 0

    def push(self, samples: np.ndarray, start: int | None = None) -> StreamOutput:
        """Feed the next chunk (mV, NaN allowed) of the stream, starting at ``start``."""
        x, start = checked_chunk(samples, start, self.next_sample)
        if not self._started or start > self.next_sample:  # the first chunk, or a gap
            self.resampler.reset()
            self._origin = int(np.ceil(start * self.detector.fs_hz / self.fs_hz))
            self._started = True
        self.next_sample = start + len(x)
        at = self._origin + self.resampler.n_out
        y = self.resampler.push(x).astype(np.float32)
        out = self.detector.push(y, start=at) if len(y) else StreamOutput()
        return self._on_stream_clock(out)

    def _stream_sample(self, sample: int) -> int:
        return round(sample * self.fs_hz / self.detector.fs_hz)

    def _on_stream_clock(self, out: StreamOutput) -> StreamOutput:
        return StreamOutput(
            beats=[dataclasses.replace(b, sample=self._stream_sample(b.sample)) for b in out.beats],
            alerts=out.alerts,
            quality=[
                dataclasses.replace(q, sample=self._stream_sample(q.sample)) for q in out.quality
            ],
        )
