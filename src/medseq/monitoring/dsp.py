"""The detector's signal processing in numpy alone: Butterworth band-pass, FIR, resampling.

Why not ``scipy.signal``: importing any part of it imports ``scipy.stats`` and the array-API
layer, about 1.3 s of CPU before the first sample, most of the detector's start-up (target
≤ 1 s on an edge device). The few operations the detector needs are written here with
numpy, each equal to its ``scipy.signal`` counterpart to rounding (``tests/unit/monitoring/
test_dsp.py`` compares them), and each gives exactly the same output whatever the chunking
of the stream (same operations in the same order for every sample).

- :func:`butter_bandpass`: ``scipy.signal.butter(order, [low, high], "bandpass", fs=fs)``
  as poles, zeros and gain (bilinear transform of the analog prototype, pre-warped edges).
- :class:`ModalIIR`: that filter run on a stream (``sosfilt`` with carried state), in the
  modal (partial-fraction) form, vectorised over fixed blocks of the stream's clock.
- :class:`StreamingFIR`: ``lfilter(taps, [1], x, zi)`` with its last inputs carried.
- :func:`firwin_kaiser` and :class:`PolyphaseResampler`: ``resample_poly(x, up, down,
  window=firwin(...))`` for segments of one fixed length, as one matrix product.
"""

from __future__ import annotations

import numpy as np


def butter_bandpass(
    order: int, low_hz: float, high_hz: float, fs_hz: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Zeros, poles and gain of the digital Butterworth band-pass (as ``scipy.signal.butter``).

    The analog low-pass prototype's poles ``-exp(i pi k / 2n)`` are moved to the band
    (``lp2bp``) around the pre-warped edges ``4 tan(pi f / fs)`` and mapped to the z-plane by
    the bilinear transform.
    """
    warped = 4.0 * np.tan(np.pi * np.array([low_hz, high_hz]) / fs_hz)
    centre, width = np.sqrt(warped[0] * warped[1]), warped[1] - warped[0]
    proto = -np.exp(1j * np.pi * np.arange(-order + 1, order, 2) / (2 * order))
    half = proto * width / 2
    root = np.sqrt(half**2 - centre**2)
    poles_s = np.concatenate([half + root, half - root])
    gain_s = width**order  # n zeros at s = 0, n at infinity
    zeros_z = np.concatenate([np.ones(order), -np.ones(order)])
    poles_z = (4.0 + poles_s) / (4.0 - poles_s)
    gain_z = gain_s * float(np.real(4.0**order / np.prod(4.0 - poles_s)))
    return zeros_z, poles_z, gain_z


class ModalIIR:
    """A rational filter ``k prod(1 - z_i w) / prod(1 - p_i w)`` (``w = 1/z``) on a stream.

    Written as ``y[n] = c x[n] + sum_i s_i[n]`` with one first-order recurrence per pole,
    ``s_i[n] = p_i s_i[n-1] + r_i x[n]`` (partial fractions; the poles must be distinct),
    only one pole of each conjugate pair kept (its real part counted twice). Within a block
    of ``R`` samples starting at ``b``, ``s[b+m] = p^(m+1) (s[b-1] + r sum_j p^-(j+1) x[b+j])``:
    a cumulative sum, so a block is a few array operations instead of a Python loop per
    sample. Blocks are fixed in the stream's clock and the cumulative sum is carried into a
    chunk that starts inside a block, so every sample is computed by the same operations
    whatever the chunking (streamed = offline, bit for bit). ``R`` is chosen so that
    ``|p|^-R <= 1e3``: no precision is lost.

    The state starts at the steady state of the first sample, as ``sosfilt_zi`` times it.
    """

    def __init__(self, zeros: np.ndarray, poles: np.ndarray, gain: float) -> None:
        zeros, poles = np.asarray(zeros, complex), np.asarray(poles, complex)
        if len(zeros) != len(poles):
            raise ValueError(
                f"ModalIIR needs as many zeros as poles, got {len(zeros)} and {len(poles)}"
            )
        keep = poles.imag >= -1e-12 * np.abs(poles)  # one of each conjugate pair, real ones
        residues = np.array(
            [
                gain * np.prod(1 - zeros / p) / np.prod(1 - np.delete(poles, i) / p)
                for i, p in enumerate(poles)
            ]
        )
        self.direct = float(np.real(gain * np.prod(zeros) / np.prod(poles)))
        self.poles, self.residues = poles[keep], residues[keep]
        self.weights = np.where(np.abs(self.poles.imag) > 1e-12, 2.0, 1.0)
        shortest = float(-np.log(np.abs(self.poles)).max())
        self.block = int(np.clip(np.log(1e3) / max(shortest, 1e-9), 8, 256))
        j = np.arange(1, self.block + 1)
        self._p_pow = self.poles[:, None] ** j  # (M, R): p^(m+1)
        self._q_pow = self.poles[:, None] ** -j  # (M, R): p^-(j+1)
        self._p_block = self.poles**self.block
        self.reset()

    def reset(self) -> None:
        """Forget the state: the next sample restarts the filter (after a gap)."""
        self._started = False
        self._pos = 0  # offset in the current block
        self._s0 = np.zeros(len(self.poles), complex)  # s[b-1] of the current block
        self._carry = np.zeros(len(self.poles), complex)  # cumulative sum so far in the block

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Filter one chunk ``x`` of shape (n,); the state moves to its end."""
        x = np.asarray(x, np.float64)
        n = len(x)
        if n == 0:
            return np.zeros(0, np.float64)
        if not self._started:
            self._s0 = self.residues * x[0] / (1 - self.poles)
            self._started = True
        r, j0 = self.block, self._pos
        rows = -(-(j0 + n) // r)
        flat = np.zeros(rows * r)
        flat[j0 : j0 + n] = x
        terms = flat.reshape(rows, r)[None] * self._q_pow[:, None, :]  # (M, rows, R)
        if j0:
            terms[:, 0, j0 - 1] = self._carry  # zeros before it: the same sums as offline
        sums = np.cumsum(terms, axis=2)
        starts = np.empty((len(self.poles), rows), complex)
        s0 = self._s0
        for k in range(rows):
            starts[:, k] = s0
            s0 = self._p_block * (s0 + self.residues * sums[:, k, -1])
        states = self.residues[:, None, None] * sums
        states += starts[:, :, None]
        states *= self._p_pow[:, None, :]  # s[b+m] = p^(m+1) (s[b-1] + r sums[m])
        flat_states = states.reshape(len(self.poles), -1)[:, j0 : j0 + n].real
        y = self.direct * x  # elementwise sums: the same rounding whatever the chunking
        for weight, state in zip(self.weights, flat_states, strict=True):
            y = y + weight * state
        end = j0 + n
        if end % r == 0:
            self._s0, self._pos = s0, 0
            self._carry = np.zeros_like(self._carry)
        else:
            self._s0, self._pos = starts[:, -1], end % r
            self._carry = sums[:, -1, end % r - 1]
        return y


class StreamingFIR:
    """A causal FIR filter (``lfilter(taps, [1.0], x, zi)``) with its last inputs carried."""

    def __init__(self, taps: np.ndarray) -> None:
        self.taps = np.asarray(taps, dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        """Zero state: the inputs before the first sample count as zeros."""
        self._tail = np.zeros(len(self.taps) - 1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``y[n] = sum_k taps[k] x[n-k]`` for one chunk ``x`` of shape (n,)."""
        x = np.asarray(x, np.float64)
        if len(x) == 0:
            return np.zeros(0, np.float64)
        joined = np.concatenate([self._tail, x])
        # np.convolve computes each output as one dot product of the same length: the
        # same rounding whatever the chunking (a matrix product may group rows differently)
        y = np.convolve(joined, self.taps, mode="valid")
        self._tail = joined[len(joined) - len(self._tail) :] if len(self._tail) else self._tail
        return y


def firwin_kaiser(numtaps: int, cutoff: float, beta: float) -> np.ndarray:
    """``scipy.signal.firwin(numtaps, cutoff, window=("kaiser", beta))``: a low-pass FIR,
    ``cutoff`` relative to the Nyquist rate, unit gain at DC."""
    m = np.arange(numtaps) - (numtaps - 1) / 2
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(numtaps, beta)
    return h / h.sum()


class PolyphaseResampler:
    """``scipy.signal.resample_poly(x, up, down, window=h)`` for inputs of length ``n_in``.

    The up-sample, filter, down-sample chain is linear, so for a fixed input length it is
    one matrix ``(n_out, n_in)`` built once: a beat window is resampled by one product.
    """

    def __init__(self, up: int, down: int, window: np.ndarray, n_in: int) -> None:
        g = int(np.gcd(up, down))
        up, down = up // g, down // g
        h = np.asarray(window, np.float64) * up
        half = (len(h) - 1) // 2
        pre_pad = down - half % down
        pre_remove = (half + pre_pad) // down
        n_out = -(-n_in * up // down)
        padded = np.concatenate([np.zeros(pre_pad), h])
        out = (np.arange(n_out) + pre_remove)[:, None] * down - np.arange(n_in)[None, :] * up
        valid = (out >= 0) & (out < len(padded))
        self.matrix = np.where(valid, padded[np.clip(out, 0, len(padded) - 1)], 0.0)
        self.n_in = n_in

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The resampled ``x`` of shape (n_in,) -> (n_out,)."""
        if len(x) != self.n_in:
            raise ValueError(f"PolyphaseResampler built for {self.n_in} samples, got {len(x)}")
        return self.matrix @ x


def max_filter(x: np.ndarray, size: int) -> np.ndarray:
    """Running maximum over windows ``x[i : i + size]``, ``len(x) - size + 1`` values
    (``scipy.ndimage.maximum_filter1d`` without its edges).

    By doubling: maxima over windows of 1, 2, 4, ... samples, then two overlapping ones
    cover ``size``; about ``log2(size)`` array operations, exact (a maximum never rounds).
    """
    n = len(x)
    if not 1 <= size <= n:
        raise ValueError(f"max_filter needs 1 <= size <= len(x), got size={size}, len(x)={n}")
    m, span = np.asarray(x), 1
    while 2 * span <= size:
        m = np.maximum(m[:-span], m[span:])  # m[i] = max(x[i : i + 2 span])
        span *= 2
    count, rest = n - size + 1, size - span
    return m[:count] if rest == 0 else np.maximum(m[:count], m[rest : rest + count])


def median(a: np.ndarray, axis: int = 0) -> np.ndarray:
    """``np.median(a, axis)`` of finite values, the same floats, without its checks.

    np.median costs about 25 µs per call in argument handling and NaN checks, called once
    per second (signal quality) and once per beat (template); the values here are finite.
    """
    n = a.shape[axis]
    lo, hi = (n - 1) // 2, n // 2
    part = np.partition(a, [lo, hi] if lo != hi else [lo], axis=axis)
    below, above = np.take(part, lo, axis=axis), np.take(part, hi, axis=axis)
    return (below + above) / 2
