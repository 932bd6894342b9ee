"""Causal filters whose state is carried from one chunk of samples to the next.

A monitor sees a stream in chunks of any size. A zero-phase filter (``filtfilt``) reads
the future and cannot run on a stream; a causal IIR filter can, if its internal state is
kept between chunks: ``scipy.signal.sosfilt`` with the final conditions of one chunk as
the initial conditions of the next performs the same operations, in the same order, as one
pass over the whole record, so chunked output equals offline output exactly.
"""

from __future__ import annotations

import numpy as np
import scipy.signal


class CausalBandpass:
    """Butterworth band-pass (second-order sections) with state carried across chunks.

    Parameters
    ----------
    fs_hz : float
        Sampling rate of the stream.
    low_hz, high_hz : float
        Pass band edges; ``0 < low_hz < high_hz < fs_hz / 2``.
    order : int, default=2
        Butterworth order (a band-pass of order ``n`` has ``2 n`` poles).

    The state starts at the steady state for the first sample (``sosfilt_zi`` times that
    sample), so a record that begins off zero does not ring at its start.
    """

    def __init__(self, fs_hz: float, low_hz: float, high_hz: float, order: int = 2) -> None:
        if not 0 < low_hz < high_hz < fs_hz / 2:
            raise ValueError(
                f"CausalBandpass needs 0 < low_hz < high_hz < fs_hz/2, got low_hz={low_hz}, "
                f"high_hz={high_hz}, fs_hz={fs_hz}"
            )
        self.sos = scipy.signal.butter(
            order, [low_hz, high_hz], btype="bandpass", fs=fs_hz, output="sos"
        )
        self._zi_unit = scipy.signal.sosfilt_zi(self.sos)
        self.zi: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the state: the next sample restarts the filter (after a gap)."""
        self.zi = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Filter one chunk ``x`` of shape (n,), float64; the state moves to its end."""
        if len(x) == 0:
            return np.zeros(0, np.float64)
        if self.zi is None:
            self.zi = self._zi_unit * x[0]
        y, self.zi = scipy.signal.sosfilt(self.sos, x, zi=self.zi)
        return np.asarray(y, dtype=np.float64)
