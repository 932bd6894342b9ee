"""Rhythm of each beat from the R-peak positions alone: RR intervals and their neighbourhood.

De Chazal et al. (2004) showed that RR intervals carry much of the S/V information: a
premature supraventricular beat has a short pre-RR relative to its neighbours at any heart
rate. :func:`rr_rhythm_values` gives the record-relative RR columns of every beat,
:func:`local_rhythm_values` how premature a beat is against the median of its neighbouring
RR intervals and how irregular that neighbourhood is (a premature beat in a regular
neighbourhood is ectopic, one in an irregular neighbourhood is likely atrial fibrillation
conducted normally: MIT-BIH 201 and 203 lose most S precision there).

``N`` is the number of beats (R peaks) of one record.
"""

from __future__ import annotations

import numpy as np

from medseq.features.signals import beats

#: RR columns of :func:`rr_rhythm_values`, in order.
RR_RHYTHM_FEATURES: tuple[str, ...] = (
    "pre_rr_over_mean",
    "post_rr_over_mean",
    "local_rr_over_mean",
    "pre_rr_over_local",
    "post_rr_over_local",
    "mean_rr_s",
    "pre_rr_s",
    "post_minus_pre_over_mean",
)
#: The columns that ``local_ratios=False`` sets to zero (ratios to the local RR).
LOCAL_RATIO_COLUMNS = slice(2, 5)
#: Rhythm around each beat (``local_rhythm > 0``): how premature it is against the median
#: neighbouring RR (robust to a short run of ectopic beats, which moves a mean), and how
#: irregular the neighbourhood is (atrial fibrillation: every beat looks premature).
LOCAL_RHYTHM_FEATURES: tuple[str, ...] = (
    "pre_rr_over_local_median",
    "post_rr_over_local_median",
    "local_drr_mad_over_median",
    "local_irregular_share",
)
#: A successive RR difference larger than this share of the local median RR is irregular.
IRREGULAR_DRR = 0.1


def rr_rhythm_values(
    peaks: np.ndarray, fs_hz: float, *, local_beats: int, local_ratios: bool = True
) -> np.ndarray:
    """:data:`RR_RHYTHM_FEATURES` of every beat of ``peaks``.

    Pre-RR, post-RR and the local RR (mean of ``local_beats`` pre-RR intervals, see
    :func:`~medseq.features.signals.beats.rr_features`) divided by the record's mean RR;
    pre- and post-RR divided by the local RR; the mean RR and the pre-RR in seconds; the
    post-minus-pre difference over the mean RR.

    Parameters
    ----------
    peaks : ndarray of shape (N,), N >= 2
        R-peak sample positions, increasing.
    fs_hz : float
    local_beats : int
        Beats in the local RR average.
    local_ratios : bool, default=True
        ``False`` sets the three ratios to the local RR (:data:`LOCAL_RATIO_COLUMNS`) to
        zero: a run of ectopic beats shortens the local RR itself and hides the prematurity
        that the ratios to the mean RR show. The columns stay, so the width does not change.

    Returns
    -------
    ndarray of shape (N, 8), float32
    """
    rr = beats.rr_features(peaks, fs_hz, local_beats=local_beats)
    pre, post, local, mean = rr[:, 0], rr[:, 1], rr[:, 2], rr[:, 3]
    rhythm = np.stack(
        [pre / mean, post / mean, local / mean, rr[:, 4], rr[:, 5], mean, pre, (post - pre) / mean],
        axis=1,
    )
    if not local_ratios:
        rhythm[:, LOCAL_RATIO_COLUMNS] = 0.0
    return rhythm


def local_rhythm_values(peaks: np.ndarray, k: int) -> np.ndarray:
    """:data:`LOCAL_RHYTHM_FEATURES` of every beat of ``peaks``.

    The neighbourhood of beat i is its ``k`` RR intervals either side (fewer at the record
    edges). Pre- and post-RR are divided by their median; the spread is the median absolute
    successive difference over that median, and the irregular share is the share of
    successive differences above :data:`IRREGULAR_DRR` of it. The first beat's pre-RR is
    its post-RR and the last beat's post-RR its pre-RR, as in :func:`beats.rr_features`.

    Parameters
    ----------
    peaks : ndarray of shape (N,)
        R-peak sample positions, increasing.
    k : int
        RR intervals on each side.

    Returns
    -------
    ndarray of shape (N, 4), float32; zeros when N < 3.
    """
    peaks = np.asarray(peaks, dtype=np.float64)
    n = len(peaks)
    if n < 3:
        return np.zeros((n, len(LOCAL_RHYTHM_FEATURES)), np.float32)
    rr = np.diff(peaks)  # rr[j] lies between beats j and j + 1
    pre = np.concatenate([rr[:1], rr])
    post = np.concatenate([rr, rr[-1:]])
    out = np.empty((n, len(LOCAL_RHYTHM_FEATURES)))
    for i in range(n):
        around = rr[max(0, i - k) : min(len(rr), i + k)]
        median = float(np.median(around))
        steps = np.abs(np.diff(around)) / median if len(around) > 1 else np.zeros(1)
        out[i] = (
            pre[i] / median,
            post[i] / median,
            np.median(steps),
            np.mean(steps > IRREGULAR_DRR),
        )
    return out.astype(np.float32)
