"""The normalized utility score of the PhysioNet/CinC Challenge 2019 (early sepsis prediction).

Written here from the definition published with the Challenge (Reyna et al., Crit Care Med
2020, 48(2):210-217, and ``shared/data/physionet2019/SOURCE.md``), not from its scoring
script. Time ``t`` counts the rows (hours) of a stay from 0. A stay is septic when any of its
labels is 1; the Challenge shifted labels 6 h earlier, so clinical onset is
``t_sepsis = (first row labelled 1) + 6``, and with ``d = t - t_sepsis`` an hourly
prediction earns (default :class:`UtilityParams`):

=========================  ==================================  ===========================
hour of a septic stay      positive prediction                 negative prediction
=========================  ==================================  ===========================
``d < -12``                false alarm, ``u_fp = -0.05``       ``u_tn = 0``
``-12 <= d <= -6``         ``0 -> 1`` linearly (early reward)  0
``-6 < d <= 3``            ``1 -> 0`` linearly (late reward)   ``0 -> -2`` linearly (missed)
``d > 3``                  0                                   0
=========================  ==================================  ===========================

Every hour of a non-septic stay earns ``u_fp`` for a positive and ``u_tn`` for a negative
prediction. Summed over all hours of all stays this is ``U``; the score is normalised
between predicting nothing (``U_none``, score 0) and the ideal predictor (``U_best``,
score 1), which is positive exactly from ``t_sepsis - 12`` to ``t_sepsis + 3`` in septic
stays and negative elsewhere::

    U_normalized = (U - U_none) / (U_best - U_none)

The ``-12 <= d <= -6`` reward is ``max(slope * (d + 12), u_fp)`` in the Challenge's
description, which is the linear ramp inside that interval and ``u_fp`` before it; the
table above is the same thing stated per interval.

Everything is vectorised over hours: stays are given as one flat label (and prediction)
array with the number of hours of each stay, so a whole cohort (1.4 million hours) costs a
few array operations. Thresholds for maximal utility are found exactly over every distinct
probability by one sort and one cumulative sum (:func:`best_utility_threshold`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "HourlyUtility",
    "UtilityParams",
    "best_utility_threshold",
    "hourly_utility",
    "normalized_utility",
    "onset_offsets",
]


@dataclass(frozen=True)
class UtilityParams:
    """The Challenge's utility parameters (hours relative to onset; rewards and costs)."""

    dt_early: float = -12.0
    dt_optimal: float = -6.0
    dt_late: float = 3.0
    max_u_tp: float = 1.0
    min_u_fn: float = -2.0
    u_fp: float = -0.05
    u_tn: float = 0.0
    label_shift_hours: int = 6

    def __post_init__(self) -> None:
        if not self.dt_early < self.dt_optimal < self.dt_late:
            raise ValueError(
                "UtilityParams: need dt_early < dt_optimal < dt_late, got "
                f"{self.dt_early}, {self.dt_optimal}, {self.dt_late}"
            )


@dataclass(frozen=True)
class HourlyUtility:
    """What each hour earns for a positive and for a negative prediction.

    Attributes
    ----------
    positive, negative : ndarray of shape (H,)
        The utility of the hour if predicted positive / negative.
    best : ndarray of shape (H,), bool
        The ideal prediction of the hour.
    stay : ndarray of shape (H,), int64
        The index of the hour's stay (0 .. n_stays - 1).
    n_stays : int
    """

    positive: np.ndarray
    negative: np.ndarray
    best: np.ndarray
    stay: np.ndarray
    n_stays: int

    def per_stay(self, predictions: np.ndarray) -> np.ndarray:
        """``(n_stays, 3)``: each stay's U of ``predictions``, U_none and U_best."""
        pred = _as_predictions(predictions, len(self.positive))
        observed = np.where(pred, self.positive, self.negative)
        ideal = np.where(self.best, self.positive, self.negative)
        columns = [observed, self.negative, ideal]
        return np.stack(
            [np.bincount(self.stay, weights=c, minlength=self.n_stays) for c in columns], axis=1
        )


def _check_labels(labels: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    n = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if (n < 1).any():
        raise ValueError(f"every stay needs at least one hour, got lengths {n[n < 1][:5]}")
    if n.sum() != len(y):
        raise ValueError(f"lengths add up to {int(n.sum())} hours but labels has {len(y)}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1 in every hour (no NaN: pass the stay's hours)")
    return y, n


def onset_offsets(
    labels: np.ndarray, lengths: np.ndarray, params: UtilityParams | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``d = t - t_sepsis`` of every hour, whether its stay is septic, and each stay's index.

    ``d`` is ``+inf`` in non-septic stays. ``t_sepsis`` is the first row labelled 1 plus
    ``params.label_shift_hours``.
    """
    params = params or UtilityParams()
    y, n = _check_labels(labels, lengths)
    stay = np.repeat(np.arange(len(n)), n)
    start = np.cumsum(n) - n
    t = np.arange(len(y)) - start[stay]
    first = np.full(len(n), np.inf)
    positive = np.flatnonzero(y == 1.0)
    np.minimum.at(first, stay[positive], t[positive].astype(np.float64))
    septic = np.isfinite(first)
    onset = first + params.label_shift_hours
    return t - onset[stay], septic[stay], stay


def hourly_utility(
    labels: np.ndarray, lengths: np.ndarray, params: UtilityParams | None = None
) -> HourlyUtility:
    """The per-hour rewards and costs of the module docstring's table.

    Parameters
    ----------
    labels : array-like of shape (H,)
        ``SepsisLabel`` of every hour of every stay, stays one after the other.
    lengths : array-like of shape (n_stays,)
        Hours of each stay, in the same order.
    params : UtilityParams, optional
    """
    p = params or UtilityParams()
    d, septic, stay = onset_offsets(labels, lengths, p)
    early = septic & (d >= p.dt_early) & (d <= p.dt_optimal)
    late = septic & (d > p.dt_optimal) & (d <= p.dt_late)
    before = septic & (d < p.dt_early)
    with np.errstate(invalid="ignore"):
        rise = p.max_u_tp * (d - p.dt_early) / (p.dt_optimal - p.dt_early)
        fall = p.max_u_tp * (p.dt_late - d) / (p.dt_late - p.dt_optimal)
        missed = p.min_u_fn * (d - p.dt_optimal) / (p.dt_late - p.dt_optimal)
    positive = np.select([~septic, before, early, late], [p.u_fp, p.u_fp, rise, fall], 0.0)
    negative = np.select([~septic, before, late], [p.u_tn, p.u_tn, missed], 0.0)
    best = early | late
    return HourlyUtility(positive, negative, best, stay, len(np.asarray(lengths).reshape(-1)))


def _as_predictions(predictions: np.ndarray, n_hours: int) -> np.ndarray:
    pred = np.asarray(predictions).reshape(-1)
    if len(pred) != n_hours:
        raise ValueError(f"predictions has {len(pred)} hours, labels {n_hours}")
    if pred.dtype != bool:
        if not np.isin(pred, (0, 1)).all():
            raise ValueError("predictions must be binary (0/1 or bool); threshold the risks")
        pred = pred.astype(bool)
    return pred


def normalized_utility(
    labels: np.ndarray,
    predictions: np.ndarray,
    lengths: np.ndarray,
    params: UtilityParams | None = None,
) -> float:
    """The Challenge's normalized utility of binary hourly ``predictions``.

    1.0 for the ideal predictions, 0.0 for none, negative when worse than none; NaN when
    the cohort has no septic stay (``U_best == U_none``: nothing to normalise by).

    Examples
    --------
    One septic stay of 20 hours labelled from hour 10 (onset ``t_sepsis`` = 16), one
    non-septic stay of 5 hours:

    >>> import numpy as np
    >>> labels = np.r_[np.zeros(10), np.ones(10), np.zeros(5)]
    >>> ideal = np.r_[np.zeros(4), np.ones(16), np.zeros(5)]
    >>> normalized_utility(labels, ideal, [20, 5]), normalized_utility(labels, 0 * ideal, [20, 5])
    (1.0, 0.0)
    """
    table = hourly_utility(labels, lengths, params).per_stay(predictions).sum(axis=0)
    observed, none, best = table
    if best == none:
        return float("nan")
    return float((observed - none) / (best - none))


def best_utility_threshold(
    labels: np.ndarray,
    risks: np.ndarray,
    lengths: np.ndarray,
    params: UtilityParams | None = None,
) -> tuple[float, float]:
    """The threshold on ``risks`` (alarm when ``risk >= threshold``) of maximal utility.

    Exact over every distinct risk: sorting the hours by risk, the utility of alarming on
    the top ``k`` hours is ``U_none`` plus the cumulative sum of ``positive - negative``,
    so all thresholds cost one sort. Choose it on validation predictions only.

    Returns
    -------
    (threshold, normalized_utility)
        ``threshold`` is one of the risks (``inf`` when alarming on nothing is best).
    """
    hourly = hourly_utility(labels, lengths, params)
    p = np.asarray(risks, dtype=np.float64).reshape(-1)
    if len(p) != len(hourly.positive) or not np.isfinite(p).all():
        raise ValueError(f"risks must be {len(hourly.positive)} finite values, got {p.shape}")
    none = hourly.negative.sum()
    span = np.where(hourly.best, hourly.positive, hourly.negative).sum() - none
    if span == 0:
        raise ValueError("no septic stay: the utility cannot be normalised")
    order = np.argsort(-p, kind="stable")
    gain = np.cumsum((hourly.positive - hourly.negative)[order])
    last_of_tie = np.r_[p[order][1:] != p[order][:-1], True]  # a threshold keeps its ties
    candidates = np.flatnonzero(last_of_tie)
    k = candidates[np.argmax(gain[candidates])]
    if gain[k] <= 0:
        return float("inf"), 0.0
    return float(p[order][k]), float(gain[k] / span)
