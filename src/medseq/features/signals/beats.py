"""Heartbeats: AAMI classes, R-peak detection, beat segments and RR-interval features.

AAMI EC57 groups the MIT-BIH beat symbols into five classes: N (normal and bundle branch
block beats, escapes), S (supraventricular ectopic), V (ventricular ectopic), F (fusion of
ventricular and normal) and Q (paced, fusion of paced, unclassifiable). De Chazal et al.
(2004) showed that RR intervals (pre, post, local and average) carry much of the S/V
information and that their inter-patient evaluation (DS1/DS2) is the honest one.

References
----------
ANSI/AAMI EC57:2012, Testing and reporting performance results of cardiac rhythm and ST
segment measurement algorithms.
de Chazal P, O'Dwyer M, Reilly RB. Automatic classification of heartbeats using ECG
morphology and heartbeat interval features. IEEE Trans Biomed Eng 2004;51(7):1196-1206.
"""

from __future__ import annotations

import logging

import numpy as np
import wfdb.processing

from medseq.schema import Signal

logger = logging.getLogger(__name__)

AAMI_CLASSES: tuple[str, ...] = ("N", "S", "V", "F", "Q")

AAMI_MAP: dict[str, str] = {
    "N": "N", "L": "N", "R": "N", "e": "N", "j": "N",
    "A": "S", "a": "S", "J": "S", "S": "S",
    "V": "V", "E": "V",
    "F": "F",
    "/": "Q", "f": "Q", "Q": "Q",
}  # fmt: skip
"""MIT-BIH beat symbol -> AAMI EC57 class. Symbols absent here are not beats."""

RR_FEATURES: tuple[str, ...] = (
    "pre_rr_s",
    "post_rr_s",
    "local_rr_s",
    "average_rr_s",
    "pre_rr_ratio",
    "post_rr_ratio",
)


def aami_class(symbol: str) -> str | None:
    """AAMI class of a beat symbol, ``None`` for non-beat annotations (``+``, ``~``...)."""
    return AAMI_MAP.get(symbol)


def beat_annotations(signal: Signal) -> tuple[np.ndarray, np.ndarray]:
    """Positions (samples) and AAMI class indices of the beat annotations of ``signal``.

    Non-beat annotations (rhythm changes ``+``, quality ``~``, comments ``"``, flutter waves
    ``!``, blocked P waves ``x``, artefacts ``|``...) are left out; their number is logged.
    """
    keep = [i for i, s in enumerate(signal.annotation_symbols) if s in AAMI_MAP]
    n_other = len(signal.annotation_symbols) - len(keep)
    if n_other:
        logger.debug("%s: %d non-beat annotations left out", signal.record_id, n_other)
    positions = signal.annotation_samples[keep]
    classes = np.array(
        [AAMI_CLASSES.index(AAMI_MAP[signal.annotation_symbols[i]]) for i in keep], np.int64
    )
    return positions, classes


def detect_r_peaks(
    samples: np.ndarray, fs_hz: float, *, channel: int = 0, search_radius_s: float = 0.05
) -> np.ndarray:
    """R-peak sample indices for a record without annotations (``wfdb.processing.XQRS``).

    XQRS is the Python port of the WFDB ``gqrs``/Pan-Tompkins family of detectors; its
    detections are then moved to the local extremum within ``search_radius_s`` (the
    annotated R peak) with ``wfdb.processing.correct_peaks``.
    """
    x = np.asarray(samples[:, channel] if samples.ndim == 2 else samples, dtype=np.float64)
    detector = wfdb.processing.XQRS(sig=x, fs=fs_hz)
    detector.detect(verbose=False)
    peaks = np.asarray(detector.qrs_inds, dtype=np.int64)
    if len(peaks) == 0:
        logger.warning("detect_r_peaks: no QRS found in %.1f s of signal", len(x) / fs_hz)
        return peaks
    radius = max(1, round(search_radius_s * fs_hz))
    corrected = wfdb.processing.correct_peaks(
        x, peaks, search_radius=radius, smooth_window_size=max(3, radius // 2), peak_dir="compare"
    )
    return np.unique(np.asarray(corrected, dtype=np.int64))


def match_peaks(detected: np.ndarray, reference: np.ndarray, tolerance: int) -> tuple[float, float]:
    """Sensitivity and positive predictivity of ``detected`` against ``reference`` peaks.

    A reference peak is found when a detection lies within ``tolerance`` samples of it
    (EC57 uses 150 ms); each detection matches at most one reference peak.
    """
    if len(reference) == 0 or len(detected) == 0:
        return 0.0, 0.0
    idx = np.clip(np.searchsorted(detected, reference), 1, len(detected) - 1)
    nearest = np.where(
        np.abs(detected[idx - 1] - reference) <= np.abs(detected[idx] - reference),
        idx - 1,
        idx,
    )
    hit = np.abs(detected[nearest] - reference) <= tolerance
    n_true = len(np.unique(nearest[hit]))
    return n_true / len(reference), n_true / len(detected)


def rr_features(peaks: np.ndarray, fs_hz: float, *, local_beats: int = 10) -> np.ndarray:
    """RR-interval features per beat, after de Chazal et al. (2004), shape (n_beats, 6).

    Columns (:data:`RR_FEATURES`): pre-RR and post-RR intervals (s); local RR, the mean of
    the ``local_beats`` pre-RR intervals centred on the beat; average RR over the record;
    pre-RR and post-RR divided by the local RR, so that a premature beat (ratio < 1) is
    recognised at any heart rate. The first beat copies its post-RR into pre-RR, the last
    its pre-RR into post-RR.
    """
    peaks = np.asarray(peaks, dtype=np.float64)
    if len(peaks) < 2:
        raise ValueError(f"rr_features needs at least 2 beats, got {len(peaks)}")
    rr_s = np.diff(peaks) / fs_hz
    pre = np.concatenate([rr_s[:1], rr_s])
    post = np.concatenate([rr_s, rr_s[-1:]])
    kernel = np.ones(local_beats) / local_beats
    padded = np.pad(pre, (local_beats // 2, local_beats - 1 - local_beats // 2), mode="edge")
    local = np.convolve(padded, kernel, mode="valid")
    average = np.full_like(pre, rr_s.mean())
    columns = [pre, post, local, average, pre / local, post / local]
    return np.stack(columns, axis=1).astype(np.float32)


def beat_segments(
    samples: np.ndarray,
    peaks: np.ndarray,
    fs_hz: float,
    *,
    before_s: float = 0.25,
    after_s: float = 0.45,
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed windows around each R peak: ``(n_kept, before + after, n_channels)``.

    The default 0.25 s before and 0.45 s after the R peak holds the P wave, QRS and T wave
    at normal rates. Beats whose window would cross the record edge are dropped; the
    returned index array says which peaks were kept, so labels can be aligned.
    """
    before = round(before_s * fs_hz)
    after = round(after_s * fs_hz)
    peaks = np.asarray(peaks, dtype=np.int64)
    kept = np.flatnonzero((peaks - before >= 0) & (peaks + after <= samples.shape[0]))
    if len(kept) < len(peaks):
        logger.debug("beat_segments: %d beats at the record edge left out", len(peaks) - len(kept))
    index = peaks[kept, None] + np.arange(-before, after)[None, :]
    return samples[index].astype(np.float32), kept
