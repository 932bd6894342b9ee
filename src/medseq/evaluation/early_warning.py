"""Early-warning figures of an hourly risk model, with bootstrap CIs over patients.

Beside the Challenge's normalized utility (:mod:`medseq.evaluation.utility`), a hospital
asks: how well do the hourly risks rank (AUROC, AUPRC over all hours), how many septic
patients get an alarm in time and how early, and how many false alarms the ward sees. With
an alarm at every hour whose risk is ``>= threshold``:

``detected``
    share of septic stays with an alarm in the ``dt_early`` (12 h) before clinical onset
    ``t_sepsis`` (first label-1 row + 6 h), the hours the utility rewards; an alarm only
    after onset is a late detection and does not count.
``median_hours_before_onset``
    over the detected stays, ``t_sepsis`` minus the hour of the first alarm in that window.
``false_alarms_per_100_patient_days``
    alarm *episodes* (an hour alarmed after one that was not) that start in a non-septic
    stay or more than 12 h before onset, per 100 days of all stays' hours.

Hours are grouped by stay, so resampling must be by patient: all figures are recomputed on
the same stratified patient resamples (septic and non-septic drawn separately, as
:func:`medseq.evaluation.bootstrap.resample_indices` does), a stay drawn k times weighing k.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from medseq.evaluation.bootstrap import CI, resample_indices
from medseq.evaluation.utility import UtilityParams, hourly_utility, onset_offsets

__all__ = ["EARLY_WARNING_METRICS", "early_warning_metrics", "early_warning_with_ci"]

EARLY_WARNING_METRICS: tuple[str, ...] = (
    "utility",
    "auroc",
    "auprc",
    "detected",
    "median_hours_before_onset",
    "false_alarms_per_100_patient_days",
)


class _Stays:
    """Per-stay sums that every figure is a weighted combination of."""

    def __init__(self, labels, risks, lengths, threshold: float, params: UtilityParams) -> None:
        self.y = np.asarray(labels, dtype=np.float64).reshape(-1)
        self.p = np.asarray(risks, dtype=np.float64).reshape(-1)
        if self.p.shape != self.y.shape or not np.isfinite(self.p).all():
            raise ValueError(f"risks must be {len(self.y)} finite values, got {self.p.shape}")
        d, septic, stay = onset_offsets(self.y, lengths, params)
        n = int(stay[-1]) + 1 if len(stay) else 0
        alarm = self.p >= threshold
        self.stay, self.n = stay, n
        self.utility = hourly_utility(self.y, lengths, params).per_stay(alarm)  # (n, 3)
        self.septic = np.bincount(stay, weights=septic, minlength=n) > 0
        window = alarm & septic & (d >= params.dt_early) & (d < 0)
        lead = np.full(n, -np.inf)
        np.maximum.at(lead, stay[window], -d[window])
        self.lead = np.where(np.isfinite(lead), lead, np.nan)
        new_stay = np.r_[True, stay[1:] != stay[:-1]]
        starts = alarm & (new_stay | ~np.r_[False, alarm[:-1]])
        false_start = starts & (~septic | (d < params.dt_early))
        self.false_alarms = np.bincount(stay, weights=false_start, minlength=n)
        self.hours = np.bincount(stay, minlength=n).astype(np.float64)

    def figures(self, weight: np.ndarray) -> dict[str, float]:
        """Every figure with stay ``i`` counted ``weight[i]`` times."""
        observed, none, best = weight @ self.utility
        hour_weight = weight[self.stay]
        keep = hour_weight > 0
        y, p, w = self.y[keep], self.p[keep], hour_weight[keep]
        both = 0 < np.average(y, weights=w) < 1
        septic_w = weight * self.septic
        detected = septic_w * np.isfinite(self.lead)
        leads = np.repeat(self.lead, detected.astype(np.int64))
        return {
            "utility": float((observed - none) / (best - none)) if best != none else np.nan,
            "auroc": float(roc_auc_score(y, p, sample_weight=w)) if both else np.nan,
            "auprc": float(average_precision_score(y, p, sample_weight=w)) if both else np.nan,
            "detected": float(detected.sum() / septic_w.sum()) if septic_w.sum() else np.nan,
            "median_hours_before_onset": float(np.median(leads)) if len(leads) else np.nan,
            "false_alarms_per_100_patient_days": float(
                100.0 * (weight @ self.false_alarms) / ((weight @ self.hours) / 24.0)
            ),
        }


def early_warning_metrics(
    labels: np.ndarray,
    risks: np.ndarray,
    lengths: np.ndarray,
    threshold: float,
    params: UtilityParams | None = None,
) -> dict[str, float]:
    """The figures of the module docstring (:data:`EARLY_WARNING_METRICS`).

    Parameters
    ----------
    labels : array-like of shape (H,)
        ``SepsisLabel`` of every hour, stays one after the other.
    risks : array-like of shape (H,)
        The model's hourly risks (probabilities of label 1).
    lengths : array-like of shape (n_stays,)
        Hours of each stay.
    threshold : float
        Alarm when ``risk >= threshold``; choose it on validation data
        (:func:`medseq.evaluation.utility.best_utility_threshold`).
    params : UtilityParams, optional
    """
    stays = _Stays(labels, risks, lengths, threshold, params or UtilityParams())
    return stays.figures(np.ones(stays.n))


def early_warning_with_ci(
    labels: np.ndarray,
    risks: np.ndarray,
    lengths: np.ndarray,
    threshold: float,
    *,
    n_boot: int = 200,
    alpha: float = 0.05,
    random_state: int = 0,
    params: UtilityParams | None = None,
) -> dict[str, CI]:
    """:func:`early_warning_metrics` with percentile bootstrap intervals over patients.

    Each resample draws septic and non-septic stays separately with replacement (so each
    keeps the cohort's number of septic stays), and every figure is computed on the same
    resamples; hourly AUROC/AUPRC weigh each hour by its stay's draw count.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    stays = _Stays(labels, risks, lengths, threshold, params or UtilityParams())
    point = stays.figures(np.ones(stays.n))
    draws = resample_indices(stays.septic.astype(np.float64), n_boot, random_state)
    values: dict[str, list[float]] = {name: [] for name in point}
    for rows in draws:
        weight = np.bincount(rows, minlength=stays.n).astype(np.float64)
        for name, value in stays.figures(weight).items():
            values[name].append(value)
    out = {}
    for name, est in point.items():
        sample = np.asarray(values[name])
        sample = sample[np.isfinite(sample)]
        if len(sample) == 0:
            out[name] = CI(est, np.nan, np.nan)
            continue
        lo, hi = np.quantile(sample, [alpha / 2, 1 - alpha / 2])
        out[name] = CI(est, float(lo), float(hi))
    return out
