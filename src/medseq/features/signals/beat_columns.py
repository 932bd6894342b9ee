"""The per-beat value columns of a beat matrix: their names and order, and record-relative values.

A beat matrix is the beat windows (see :mod:`medseq.features.signals.beat_windows`)
followed by the scalar values named here, always in :func:`scalar_feature_names` order, so
that a model trained on one option set reads the same column at the same place in every
record. Each optional block is appended after those that existed before it, so turning an
option off gives exactly the columns of earlier configs.

``record_relative`` re-expresses each dissimilarity to the median beat against that
value's median over the record: how unusual a beat is for *this* recording, so that a
noisy record whose normal beats all deviate from their median (MIT-BIH 108) does not look
ventricular.
"""

from __future__ import annotations

import numpy as np

from medseq.features.signals.beat_rhythm import LOCAL_RHYTHM_FEATURES, RR_RHYTHM_FEATURES
from medseq.features.signals.beat_template import LOCAL_TEMPLATE_FEATURES, TEMPLATE_FEATURES
from medseq.features.signals.qrs_shape import QRS_SHAPE_FEATURES

#: The per-beat values after the windows that every option set has: rhythm (RR) and
#: template-matching summaries.
SCALAR_FEATURES: tuple[str, ...] = (*RR_RHYTHM_FEATURES, *TEMPLATE_FEATURES)
#: Template-matching values of the second lead (``second_lead=True``).
LEAD2_TEMPLATE_FEATURES: tuple[str, ...] = tuple(f"lead2_{n}" for n in TEMPLATE_FEATURES)
#: Dissimilarities that ``record_relative=True`` re-expresses against the record's median
#: (correlations as 1 - r); the values of these names that are present get one column each.
RECORD_RELATIVE_BASES: tuple[str, ...] = (
    "qrs_correlation_with_median",
    "window_correlation_with_median",
    "deviation_rms_over_median_rms",
    "qrs_deviation_rms_over_median_rms",
    "qrs_best_shift_correlation",
    "lead2_qrs_correlation_with_median",
    "lead2_window_correlation_with_median",
    "lead2_deviation_rms_over_median_rms",
    "lead2_qrs_deviation_rms_over_median_rms",
    "lead2_qrs_best_shift_correlation",
)
#: Added to a dissimilarity and to its record median before their ratio is logged.
RELATIVE_EPS = 0.01


def scalar_feature_names(
    *,
    qrs_shape: bool = False,
    second_lead: bool = False,
    record_relative: bool = False,
    local_template: int = 0,
    local_rhythm: int = 0,
) -> list[str]:
    """Names of the per-beat values after the windows, in column order.

    Parameters
    ----------
    qrs_shape, second_lead, record_relative : bool, default=False
    local_template, local_rhythm : int, default=0
        The options of :class:`~medseq.features.signals.beat_featurizer.BeatFeaturizer`
        of the same names; only whether each is > 0 matters here.

    Returns
    -------
    list of str
    """
    names = list(SCALAR_FEATURES)
    if qrs_shape:
        names += QRS_SHAPE_FEATURES
    if second_lead:
        names += LEAD2_TEMPLATE_FEATURES
        if qrs_shape:
            names += [f"lead2_{n}" for n in QRS_SHAPE_FEATURES]
    if record_relative:
        names += [f"{n}_vs_record" for n in RECORD_RELATIVE_BASES if n in names]
    if local_template:
        names += LOCAL_TEMPLATE_FEATURES
        if second_lead:
            names += [f"lead2_{n}" for n in LOCAL_TEMPLATE_FEATURES]
    if local_rhythm:
        names += LOCAL_RHYTHM_FEATURES
    return names


def record_relative_values(values: np.ndarray, names: list[str]) -> np.ndarray:
    """``log((d + eps) / (median(d) + eps))`` of each dissimilarity ``d`` over the record.

    ``d`` is the value of a deviation RMS column and ``1 - r`` of a correlation column
    (negative values clipped to 0); ``eps`` is :data:`RELATIVE_EPS`.

    Parameters
    ----------
    values : ndarray of shape (N, C)
        One record's beats, with the columns ``names``.
    names : list of str, length C
        Must hold at least one of :data:`RECORD_RELATIVE_BASES`.

    Returns
    -------
    ndarray of shape (N, K), float32
        One column per name of :data:`RECORD_RELATIVE_BASES` present in ``names``, in that
        order.
    """
    out = []
    for name in RECORD_RELATIVE_BASES:
        if name not in names:
            continue
        column = values[:, names.index(name)].astype(np.float64)
        d = 1.0 - column if "correlation" in name else column
        d = np.maximum(d, 0.0)
        out.append(np.log((d + RELATIVE_EPS) / (np.median(d) + RELATIVE_EPS)))
    return np.stack(out, axis=1).astype(np.float32)
