"""Template matching of beat windows: each beat against the record's or its neighbours' median.

Inter-patient beat classification punishes features that memorise a patient's QRS shape;
comparing each beat with the *same patient's* usual beat does not. A ventricular beat is
wide and unlike the patient's median beat, a supraventricular one is like it but early
(de Chazal et al. 2004; template matching as in the AAMI-era detectors). When the normal
morphology itself changes over a record (intermittent pre-excitation in MIT-BIH 230,
bundle-branch-block periods in 207), the median of a beat's neighbours is the better
template (:func:`local_template_values`).

Every function here is pure: windows in, one row of values per beat out. ``N`` is the
number of beats and ``W`` the samples per window.
"""

from __future__ import annotations

import numpy as np

#: Half-width (s) of the QRS around the R peak over which the QRS correlation is taken.
QRS_HALF_S = 0.1
#: Template matching against the record's median beat, in column order.
TEMPLATE_FEATURES: tuple[str, ...] = (
    "qrs_correlation_with_median",
    "window_correlation_with_median",
    "deviation_rms_over_median_rms",
)
#: Template matching against the neighbours' median beat (``local_template > 0``), per lead.
LOCAL_TEMPLATE_FEATURES: tuple[str, ...] = (
    "qrs_correlation_with_local_median",
    "window_correlation_with_local_median",
    "deviation_rms_over_local_median_rms",
)


def row_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of ``a`` with ``b``; 0 where either row is flat.

    Parameters
    ----------
    a : ndarray of shape (N, W)
    b : ndarray of shape (W,) or (N, W)
        One template for every row, or one per row.

    Returns
    -------
    ndarray of shape (N,)
    """
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    return np.where(den > 0, (a * b).sum(axis=-1) / np.maximum(den, 1e-12), 0.0)


def qrs_slice(r_index: int, qrs_half: int) -> slice:
    """Window indices ``r_index - qrs_half .. r_index + qrs_half`` (clipped at 0)."""
    return slice(max(0, r_index - qrs_half), r_index + qrs_half + 1)


def template_summaries(
    small: np.ndarray, deviation: np.ndarray, *, r_index: int, qrs_half: int
) -> np.ndarray:
    """:data:`TEMPLATE_FEATURES` of each beat against the record's median beat.

    The QRS correlation and the whole-window correlation with the median beat, and the RMS
    of the deviation over the median beat's RMS (0 for a flat median beat).

    Parameters
    ----------
    small : ndarray of shape (N, W)
        The beat windows.
    deviation : ndarray of shape (N, W)
        ``small`` minus the record's median beat (so ``small - deviation`` is that median
        on every row, as :func:`~medseq.features.signals.beat_windows.lead_windows` gives).
    r_index, qrs_half : int
        The R peak's index in a window and the QRS half-width, in window samples.

    Returns
    -------
    ndarray of shape (N, 3)
    """
    median = small - deviation
    qrs = qrs_slice(r_index, qrs_half)
    rms_median = np.sqrt((median[0] ** 2).mean())
    rms_dev = np.sqrt((deviation**2).mean(axis=1))
    ratio = rms_dev / rms_median if rms_median > 0 else np.zeros_like(rms_dev)
    return np.stack(
        [row_correlation(small[:, qrs], median[:, qrs]), row_correlation(small, median), ratio],
        axis=1,
    )


def local_templates(small: np.ndarray, k: int) -> np.ndarray:
    """Each beat's local template: the median of the ``k`` windows either side of it.

    Fewer at the record edges; the beat itself is left out, so an isolated ectopic beat
    does not become its own template.

    Parameters
    ----------
    small : ndarray of shape (N, W), N >= 2
    k : int
        Neighbours on each side.

    Returns
    -------
    ndarray of shape (N, W), float64
    """
    small = np.asarray(small, dtype=np.float64)
    n = len(small)
    templates = np.empty_like(small)
    for i in range(n):
        lo, hi = max(0, i - k), min(n, i + k + 1)
        neighbours = np.concatenate([small[lo:i], small[i + 1 : hi]])
        templates[i] = np.median(neighbours, axis=0)
    return templates


def local_template_values(small: np.ndarray, k: int, *, r_index: int, qrs_half: int) -> np.ndarray:
    """:data:`LOCAL_TEMPLATE_FEATURES` of windows ``small`` against their neighbours.

    Each beat's template is :func:`local_templates`; the QRS is ``r_index +- qrs_half``.

    Parameters
    ----------
    small : ndarray of shape (N, W)
    k : int
        Neighbours on each side of a beat.
    r_index, qrs_half : int
        The R peak's index in a window and the QRS half-width, in window samples.

    Returns
    -------
    ndarray of shape (N, 3), float32; zeros when N < 2 (no neighbour).
    """
    small = np.asarray(small, dtype=np.float64)
    n = len(small)
    if n < 2:
        return np.zeros((n, 3), np.float32)
    templates = local_templates(small, k)
    qrs = qrs_slice(r_index, qrs_half)
    rms = np.sqrt((templates**2).mean(axis=1))
    deviation = np.sqrt(((small - templates) ** 2).mean(axis=1))
    ratio = np.where(rms > 1e-9, deviation / np.maximum(rms, 1e-9), 0.0)
    qrs_corr = row_correlation(small[:, qrs], templates[:, qrs])
    return np.stack([qrs_corr, row_correlation(small, templates), ratio], axis=1).astype(np.float32)
