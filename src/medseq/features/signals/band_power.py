"""Band powers and simple statistics of single-channel EEG: the classical baseline's features.

The textbook EEG classifier (and the usual baseline on the Bonn database, e.g. Subasi 2007,
Tzallas et al. 2009) is a tree or kernel model on spectral band powers plus a few time-domain
statistics. These are computed per recording with nothing fitted, so a baseline on them
sees exactly the folds a neural model sees.

Spectra: Welch's method (:func:`scipy.signal.welch`, Hann windows of ``window_s``, 50 %
overlap). Bands (Hz): delta 0.5-4, theta 4-8, alpha 8-13, beta 13-30, gamma 30-45.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
from scipy import signal as scipy_signal
from scipy import stats

from medseq.features.base import ArraySpec, FeaturizerDescription
from medseq.features.signals.signal_featurizer import SignalFeaturizer
from medseq.schema import Signal

BANDS_HZ: dict[str, tuple[float, float]] = {
    "delta": (0.5, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 45.0),
}
STATISTICS = (
    "log_total_power",
    "spectral_edge_95_hz",
    "peak_frequency_hz",
    "log_std",
    "skewness",
    "kurtosis",
    "log_line_length",
    "zero_crossing_rate",
    "hjorth_mobility",
    "hjorth_complexity",
    "log_range",
)


def feature_names() -> list[str]:
    """Column names of :func:`band_power_features`, in order."""
    bands = [f"log_power_{b}" for b in BANDS_HZ] + [f"relative_power_{b}" for b in BANDS_HZ]
    return bands + list(STATISTICS)


def _spectral(x: np.ndarray, fs_hz: float, window_s: float) -> list[float]:
    freqs, psd = scipy_signal.welch(x, fs=fs_hz, nperseg=min(len(x), round(window_s * fs_hz)))
    step = freqs[1] - freqs[0]
    powers = np.array(
        [psd[(freqs >= lo) & (freqs < hi)].sum() * step for lo, hi in BANDS_HZ.values()]
    )
    in_band = (freqs >= 0.5) & (freqs < 45.0)
    total = psd[in_band].sum() * step
    cumulative = np.cumsum(psd[in_band]) / max(psd[in_band].sum(), 1e-12)
    edge = float(freqs[in_band][np.searchsorted(cumulative, 0.95)])
    peak = float(freqs[in_band][np.argmax(psd[in_band])])
    relative = powers / max(total, 1e-12)
    return [*np.log(powers + 1e-12), *relative, float(np.log(total + 1e-12)), edge, peak]


def _temporal(x: np.ndarray) -> list[float]:
    dx, ddx = np.diff(x), np.diff(x, n=2)
    var, var_d, var_dd = x.var(), dx.var(), ddx.var()
    mobility = np.sqrt(var_d / max(var, 1e-12))
    complexity = np.sqrt(var_dd / max(var_d, 1e-12)) / max(mobility, 1e-12)
    centred = x - x.mean()
    crossings = np.count_nonzero(np.diff(np.signbit(centred))) / len(x)
    return [
        float(np.log(x.std() + 1e-12)),
        float(stats.skew(x)),
        float(stats.kurtosis(x)),
        float(np.log(np.abs(dx).mean() + 1e-12)),
        float(crossings),
        float(mobility),
        float(complexity),
        float(np.log(x.max() - x.min() + 1e-12)),
    ]


def band_power_features(signals: Sequence[Signal], *, window_s: float = 2.0) -> np.ndarray:
    """``(N, F)`` float32: log and relative band powers, then :data:`STATISTICS`.

    Each recording's first channel is used whole; the column order is :func:`feature_names`.
    """
    rows = []
    for s in signals:
        x = s.samples[:, 0].astype(np.float64)
        rows.append(_spectral(x, s.fs_hz, window_s) + _temporal(x))
    return np.asarray(rows, dtype=np.float32)


@dataclass
class BandPowerSignalFeaturizer(SignalFeaturizer):
    """A :class:`SignalFeaturizer` that also gives each recording's band powers as ``static``.

    For a ``ConvRNN`` with ``static_size`` = :attr:`n_summaries` ("summary fusion", as the
    CinC 2017 rhythm summaries): the recurrence reads the raw waveform, and the head also
    sees :func:`band_power_features` of the whole recording, z-scored with the mean and sd
    of the recordings it was fitted on (stored in the state, so a bundle re-applies them).

    Parameters
    ----------
    window_s : float, default=2.0
        Welch window of the band powers.
    summary_mean_, summary_scale_ : list of float
        Fitted z-scoring of the summaries (set by :meth:`fit`).
    """

    kind: ClassVar[str] = "signal_band_power"

    window_s: float = 2.0
    summary_mean_: list[float] | None = None
    summary_scale_: list[float] | None = None

    @property
    def n_summaries(self) -> int:
        """Width of ``static``: the number of :func:`feature_names`."""
        return len(feature_names())

    def fit(self, signals: Sequence[Signal]) -> BandPowerSignalFeaturizer:
        """The channel count, and the z-scoring of the summaries of ``signals``."""
        super().fit(signals)
        x = band_power_features(signals, window_s=self.window_s).astype(np.float64)
        sd = x.std(axis=0)
        self.summary_mean_ = x.mean(axis=0).tolist()
        self.summary_scale_ = np.where(sd > 0, sd, 1.0).tolist()
        return self

    def describe(self) -> FeaturizerDescription:
        """:class:`SignalFeaturizer`'s description plus ``static`` ``(N, S)``, the z-scored
        band powers and statistics."""
        base = super().describe()
        static = ArraySpec(
            "static", "float32", ("N", "S"), {"S": self.n_summaries}, "z-scored band powers"
        )
        return replace(base, outputs=(*base.outputs, static))

    def transform(self, signals: Sequence[Signal]) -> dict[str, np.ndarray]:
        """``values`` and ``lengths`` as :class:`SignalFeaturizer`, plus ``static`` ``(N, F)``."""
        out = super().transform(signals)
        x = band_power_features(signals, window_s=self.window_s)
        mean, scale = np.asarray(self.summary_mean_), np.asarray(self.summary_scale_)
        out["static"] = ((x - mean) / scale).astype(np.float32)
        return out
