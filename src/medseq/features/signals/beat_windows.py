"""Beat windows of one ECG lead: cut around each R peak, resampled, and minus the median beat.

Each window runs ``before_s`` before to ``after_s`` after the R peak (P wave, QRS and T wave
at normal rates), after a band-pass and a per-record robust standardisation, so that a
value of 1 means one (robust) standard deviation of *this* record's trace whatever the
gain. Beats near the record edges get a zero-padded window (zero is the baseline after the
standardisation), so every peak has a row and no labelled beat is dropped. The stored
window is resampled to ``segment_fs_hz`` (0.7 s at 50 Hz is 35 values); its deviation from
the record's median beat shows what is *unusual for this patient*.

``N`` is the number of beats, ``T`` the samples of the record, ``L`` the samples of a
full-rate window and ``W`` those of a resampled one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from medseq.features.signals import beats
from medseq.features.signals import signal as sig
from medseq.features.signals.beat_template import QRS_HALF_S


@dataclass(frozen=True)
class BeatWindowSpec:
    """How beat windows are cut: the band-pass, the span around the R peak, the stored rate.

    Parameters
    ----------
    low_hz, high_hz : float, default=0.5, 40.0
        Band-pass applied before the beats are cut.
    before_s, after_s : float, default=0.25, 0.45
        Window around each R peak.
    segment_fs_hz : float, default=50.0
        Rate of the stored (resampled) window.
    """

    low_hz: float = 0.5
    high_hz: float = 40.0
    before_s: float = 0.25
    after_s: float = 0.45
    segment_fs_hz: float = 50.0

    @property
    def length(self) -> int:
        """``W``, the values per stored window."""
        return round((self.before_s + self.after_s) * self.segment_fs_hz)

    @property
    def r_index(self) -> int:
        """The R peak's index in a stored window."""
        return round(self.before_s * self.segment_fs_hz)

    @property
    def qrs_half(self) -> int:
        """Half-width of the QRS in stored-window samples (at least 1)."""
        return max(1, round(QRS_HALF_S * self.segment_fs_hz))


class LeadWindows(NamedTuple):
    """The windows of one lead: full rate, resampled, and resampled minus the median beat."""

    full: np.ndarray  # (N, L) at the recording's rate
    small: np.ndarray  # (N, W) at segment_fs_hz
    deviation: np.ndarray  # (N, W): small minus the record's median small window


def lead_index(channel_names: tuple[str, ...] | list[str], lead: str | None) -> int:
    """Index of channel ``lead``; 0 (the first channel) when ``lead`` is None or absent."""
    if lead is not None and lead in channel_names:
        return list(channel_names).index(lead)
    return 0


def other_channel(n_channels: int, primary: int) -> int | None:
    """The first channel other than ``primary``; None for a single-channel record."""
    others = [k for k in range(n_channels) if k != primary]
    return others[0] if others else None


def full_rate_windows(
    channel: np.ndarray, fs_hz: float, peaks: np.ndarray, spec: BeatWindowSpec
) -> tuple[np.ndarray, np.ndarray]:
    """Band-passed, per-record standardised windows around ``peaks``, edges zero-padded.

    Parameters
    ----------
    channel : ndarray of shape (T, 1)
    fs_hz : float
    peaks : ndarray of shape (N,)
        R-peak sample positions.
    spec : BeatWindowSpec

    Returns
    -------
    windows : ndarray of shape (N', L, 1), float32
        ``L = round(before_s * fs_hz) + round(after_s * fs_hz)``.
    kept : ndarray of shape (N',)
        Indices into ``peaks`` of the windows (every peak inside the record).
    """
    x = sig.bandpass_filter(channel, fs_hz, low_hz=spec.low_hz, high_hz=spec.high_hz)
    x = sig.normalize_per_record(x)
    margin = round(max(spec.before_s, spec.after_s) * fs_hz)
    x = np.pad(x, ((margin, margin), (0, 0)))
    return beats.beat_segments(
        x, peaks + margin, fs_hz, before_s=spec.before_s, after_s=spec.after_s
    )


def resampled_windows(full: np.ndarray, fs_hz: float, spec: BeatWindowSpec) -> np.ndarray:
    """Windows ``full`` ``(N, L)`` resampled to ``segment_fs_hz`` and cut or zero-padded
    to ``(N, W)``, ``W = spec.length``."""
    small = sig.resample(full.T, fs_hz, spec.segment_fs_hz).T
    small = small[:, : spec.length]
    if small.shape[1] < spec.length:
        small = np.pad(small, ((0, 0), (0, spec.length - small.shape[1])))
    return small


def lead_windows(
    channel: np.ndarray, fs_hz: float, peaks: np.ndarray, spec: BeatWindowSpec
) -> tuple[LeadWindows, np.ndarray]:
    """Every window of one lead that the beat features read, computed once per record.

    Parameters
    ----------
    channel : ndarray of shape (T, 1)
    fs_hz : float
    peaks : ndarray of shape (N,)
    spec : BeatWindowSpec

    Returns
    -------
    windows : LeadWindows
        ``full`` ``(N', L)``, ``small`` and ``deviation`` ``(N', W)``.
    kept : ndarray of shape (N',)
        Indices into ``peaks`` of the rows.
    """
    segments, kept = full_rate_windows(channel, fs_hz, peaks, spec)
    full = segments[:, :, 0]
    small = resampled_windows(full, fs_hz, spec)
    deviation = small - np.median(small, axis=0, keepdims=True)
    return LeadWindows(full, small, deviation), kept
