"""QRS shape of each beat against the record's median beat, at the recording's own rate.

A ventricular beat has a wide, large, differently shaped QRS; an atrial ectopic beat an
unusual P wave before a normal QRS. Each value is a ratio to (or a correlation with) the
same patient's median beat, so 1 (or r = 1) means "as this patient's usual beat" whatever
the lead, the gain or the patient. The values are computed on full-rate windows, since a
50 Hz window leaves a QRS only five samples wide.

``N`` is the number of beats and ``L`` the samples per full-rate window.
"""

from __future__ import annotations

import numpy as np

from medseq.features.signals.beat_template import QRS_HALF_S, row_correlation

#: Per-lead QRS-shape values (``qrs_shape=True``), in column order.
QRS_SHAPE_FEATURES: tuple[str, ...] = (
    "qrs_width_over_median",
    "qrs_area_over_median",
    "qrs_ptp_over_median",
    "qrs_deviation_rms_over_median_rms",
    "qrs_best_shift_correlation",
    "p_wave_correlation_with_median",
)
#: Half-width (s) of the span over which the QRS width is measured.
WIDTH_HALF_S = 0.15
#: Largest shift (s) tried by the shift-tolerant QRS correlation.
SHIFT_S = 0.05
#: The P-wave region, from ``P_WAVE_S[0]`` to ``P_WAVE_S[1]`` seconds before the R peak.
P_WAVE_S = (0.25, 0.06)


def slope_width(windows: np.ndarray, fs_hz: float) -> np.ndarray:
    """Seconds between 10 % and 90 % of the cumulative absolute slope of each row.

    Parameters
    ----------
    windows : ndarray of shape (..., L)
    fs_hz : float

    Returns
    -------
    ndarray of shape (...,); 0 for a flat row.
    """
    slope = np.abs(np.diff(windows, axis=-1))
    total = slope.sum(axis=-1, keepdims=True)
    cumulative = np.cumsum(slope, axis=-1) / np.maximum(total, 1e-12)
    start = (cumulative < 0.1).sum(axis=-1)
    stop = (cumulative < 0.9).sum(axis=-1)
    return np.where(total[..., 0] > 0, (stop - start) / fs_hz, 0.0)


def _ratio(values: np.ndarray, reference: float) -> np.ndarray:
    return values / reference if reference > 1e-9 else np.ones_like(values)


def _span(r_index: int, half_s: float, fs_hz: float, length: int) -> slice:
    half = max(1, round(half_s * fs_hz))
    return slice(max(0, r_index - half), min(length, r_index + half + 1))


def best_shift_correlation(
    windows: np.ndarray, template: np.ndarray, qrs: slice, room: int
) -> np.ndarray:
    """Largest correlation of each row's QRS with ``template`` over shifts of +-``room``.

    An R peak marked at another fiducial point of a normal beat still matches.

    Parameters
    ----------
    windows : ndarray of shape (N, L)
    template : ndarray of shape (qrs.stop - qrs.start,)
    qrs : slice
        The QRS span in a window; ``qrs.start - room >= 0`` and ``qrs.stop + room <= L``.
    room : int
        Largest shift in samples.

    Returns
    -------
    ndarray of shape (N,)
    """
    best = np.full(len(windows), -1.0)
    for shift in range(-room, room + 1):
        shifted = windows[:, qrs.start + shift : qrs.stop + shift]
        best = np.maximum(best, row_correlation(shifted, template))
    return best


def qrs_shape_values(windows: np.ndarray, fs_hz: float, *, r_index: int) -> np.ndarray:
    """:data:`QRS_SHAPE_FEATURES` of beats ``windows`` against their median beat.

    Each beat's baseline is its own median over the window. Width (10-90 % span of the
    absolute slope within R +- :data:`WIDTH_HALF_S`), area and peak-to-peak amplitude over
    R +- :data:`~medseq.features.signals.beat_template.QRS_HALF_S` are divided by the
    median beat's; the QRS deviation RMS by the median QRS's RMS; the best QRS correlation
    over shifts of +- :data:`SHIFT_S`; the P-wave region's correlation (:data:`P_WAVE_S`).

    Parameters
    ----------
    windows : ndarray of shape (N, L)
        Full-rate beat windows of one record.
    fs_hz : float
        Their sampling rate.
    r_index : int
        The R peak's position in each window.

    Returns
    -------
    ndarray of shape (N, 6), float32
    """
    windows = np.asarray(windows, dtype=np.float64)
    windows = windows - np.median(windows, axis=1, keepdims=True)
    median = np.median(windows, axis=0)
    length = windows.shape[1]
    qrs = _span(r_index, QRS_HALF_S, fs_hz, length)
    wide = _span(r_index, WIDTH_HALF_S, fs_hz, length)
    width = _ratio(slope_width(windows[:, wide], fs_hz), float(slope_width(median[wide], fs_hz)))
    area = _ratio(np.abs(windows[:, qrs]).sum(axis=1), float(np.abs(median[qrs]).sum()))
    ptp = _ratio(np.ptp(windows[:, qrs], axis=1), float(np.ptp(median[qrs])))
    deviation_rms = np.sqrt(((windows[:, qrs] - median[qrs]) ** 2).mean(axis=1))
    median_rms = float(np.sqrt((median[qrs] ** 2).mean()))
    deviation = deviation_rms / median_rms if median_rms > 1e-9 else np.zeros_like(deviation_rms)
    room = min(round(SHIFT_S * fs_hz), qrs.start, length - qrs.stop)
    best = best_shift_correlation(windows, median[qrs], qrs, room)
    p_start = max(0, r_index - round(P_WAVE_S[0] * fs_hz))
    p_stop = max(p_start + 2, r_index - round(P_WAVE_S[1] * fs_hz))
    p_wave = row_correlation(windows[:, p_start:p_stop], median[p_start:p_stop])
    return np.stack([width, area, ptp, deviation, best, p_wave], axis=1).astype(np.float32)
