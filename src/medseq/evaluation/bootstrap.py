"""Bootstrap confidence intervals (percentile method) for any metric.

The resamples are drawn once as a (n_boot, N) array of indices and every metric of a table
is computed on the same resamples, vectorised where medseq has a row-wise version of the
metric (all built-in ones), so a 1000-resample table costs about as much as a few
scikit-learn calls.

Binary labels are resampled **stratified** by default: each resample keeps the number of
positives and negatives of the data, so none of them has a single class and the interval
reflects the uncertainty of the scores at the observed prevalence. Without stratification,
resamples with one class (where AUROC is undefined) are skipped, counted in
``BootstrapDistribution.n_skipped`` and reported in a warning.

**Clusters.** When several samples belong to one patient (a prediction at every check-up,
every beat of a record), the samples are not independent and a per-sample resample makes
the interval too narrow. Given ``groups`` (the patient of each sample) the resamples draw
*patients* with replacement and take all their samples (the cluster bootstrap, Field &
Welsh 2007), stratified on whether a patient has a positive sample. With one sample per
patient it draws exactly the per-sample resamples (same generator calls, same indices).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from medseq.evaluation import resampled
from medseq.evaluation.metrics import (
    BINARY_METRICS,
    REGRESSION_METRICS,
    binary_metric_functions,
    check_binary,
    check_finite_pair,
    check_regression,
    regression_metric_functions,
)

Metric = str | Callable[[np.ndarray, np.ndarray], float]
_CHUNK_ROWS = 256  # resamples per vectorised block: bounds memory at 256 x N per array


class CI(NamedTuple):
    """A point estimate on all the data and its bootstrap interval."""

    point: float
    lo: float
    hi: float


@dataclass(frozen=True)
class BootstrapDistribution:
    """A metric on all the data and on each usable resample.

    Attributes
    ----------
    point : float
        The metric on the full data.
    values : ndarray of shape (n_boot - n_skipped,)
        The metric on each resample that was not skipped.
    n_skipped : int
        Resamples with a single class, skipped for metrics that need both.
    """

    point: float
    values: np.ndarray
    n_skipped: int

    def ci(self, alpha: float = 0.05) -> CI:
        """Percentile interval holding ``1 - alpha`` of the resampled values."""
        lo, hi = np.quantile(self.values, [alpha / 2.0, 1.0 - alpha / 2.0])
        return CI(self.point, float(lo), float(hi))


@dataclass(frozen=True)
class _Spec:
    scalar: Callable[[np.ndarray, np.ndarray], float]
    rows: Callable[[np.ndarray, np.ndarray], np.ndarray] | None
    needs_both_classes: bool


def _is_binary(y: np.ndarray) -> bool:
    return bool(np.isin(y, (0.0, 1.0)).all() and len(np.unique(y)) == 2)


def _spec(metric: Metric, y: np.ndarray, threshold: float) -> _Spec:
    if callable(metric):
        return _Spec(metric, None, _is_binary(y))
    if metric in BINARY_METRICS:
        fn = binary_metric_functions(threshold)[metric]
        return _Spec(fn, resampled.binary_row_metrics(threshold)[metric], True)
    if metric in REGRESSION_METRICS:
        fn = regression_metric_functions()[metric]
        return _Spec(fn, resampled.regression_row_metrics()[metric], False)
    known = BINARY_METRICS + REGRESSION_METRICS
    raise ValueError(f"metric must be a callable or one of {known}, got {metric!r}")


def _check_inputs(y_true: object, y_pred: object, metric: Metric) -> tuple[np.ndarray, ...]:
    if isinstance(metric, str) and metric in BINARY_METRICS:
        y, p = check_binary(y_true, y_pred)
        return y.astype(np.float64), p
    if isinstance(metric, str) and metric in REGRESSION_METRICS:
        return check_regression(y_true, y_pred)
    return check_finite_pair(y_true, y_pred)


Indices = np.ndarray | list[np.ndarray]


def resample_indices(
    y_true: np.ndarray,
    n_boot: int = 1000,
    random_state: int | np.random.Generator | None = 0,
    stratified: bool = True,
) -> np.ndarray:
    """Bootstrap indices of shape (n_boot, N), drawn with replacement.

    With ``stratified=True`` and 0/1 labels holding both classes, each row draws the
    positives from the positives and the negatives from the negatives; otherwise (and
    always for continuous targets) it draws from all N samples.
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot must be an int >= 1, got {n_boot!r}")
    rng = np.random.default_rng(random_state)
    y = np.asarray(y_true)
    n = len(y)
    if not (stratified and _is_binary(y)):
        return rng.integers(0, n, size=(n_boot, n))
    groups = [np.flatnonzero(y == label) for label in (0.0, 1.0)]
    draws = [g[rng.integers(0, len(g), size=(n_boot, len(g)))] for g in groups]
    return np.concatenate(draws, axis=1)


class Clusters:
    """The samples of each patient, laid out to draw cluster resamples fast.

    Parameters
    ----------
    groups : array-like of shape (n_samples,)
        The patient of each sample; patients are numbered by their first sample.
    """

    def __init__(self, groups: object) -> None:
        import pandas as pd

        values = np.asarray(groups)
        if values.ndim != 1 or len(values) == 0:
            raise ValueError(f"groups must be one patient per sample, got shape {values.shape}")
        codes, _ = pd.factorize(values)  # 0, 1, ... in order of first appearance
        if (codes < 0).any():
            raise ValueError("groups has missing values: every sample needs its patient")
        self.order_ = np.argsort(codes, kind="stable")  # positions, patient by patient
        self.sizes_ = np.bincount(codes)
        self.starts_ = np.concatenate([[0], np.cumsum(self.sizes_)[:-1]])
        self.n_samples_ = len(values)

    def __len__(self) -> int:
        return len(self.sizes_)

    def expand(self, drawn: np.ndarray) -> np.ndarray:
        """All sample positions of the drawn patients ``drawn``, in draw order."""
        counts = self.sizes_[drawn]
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return self.order_[np.repeat(self.starts_[drawn], counts) + offsets]

    def positive(self, y: np.ndarray) -> np.ndarray:
        """Whether each patient has a positive sample (0/1 labels)."""
        return np.maximum.reduceat(np.asarray(y)[self.order_], self.starts_) == 1.0


def cluster_resample_indices(
    y_true: np.ndarray,
    groups: object,
    n_boot: int = 1000,
    random_state: int | np.random.Generator | None = 0,
    stratified: bool = True,
) -> list[np.ndarray]:
    """Cluster bootstrap: ``n_boot`` index arrays, each all the samples of patients drawn
    with replacement (lengths vary with the patients drawn).

    With ``stratified=True`` and 0/1 labels, patients with a positive sample are drawn from
    those and the others from the others, keeping both kinds in every resample. When every
    patient has one sample this returns the rows of :func:`resample_indices`.
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot must be an int >= 1, got {n_boot!r}")
    y = np.asarray(y_true)
    clusters = groups if isinstance(groups, Clusters) else Clusters(groups)
    if clusters.n_samples_ != len(y):
        raise ValueError(
            f"groups names the patients of {clusters.n_samples_} samples, y_true has {len(y)}"
        )
    rng = np.random.default_rng(random_state)
    if stratified and _is_binary(y):
        positive = clusters.positive(y)
        strata = [np.flatnonzero(~positive), np.flatnonzero(positive)]
        strata = [g for g in strata if len(g)]  # every patient with a positive: one stratum
        drawn = np.concatenate(
            [g[rng.integers(0, len(g), size=(n_boot, len(g)))] for g in strata], axis=1
        )
    else:
        drawn = rng.integers(0, len(clusters), size=(n_boot, len(clusters)))
    return [clusters.expand(row) for row in drawn]


def draw_indices(
    y_true: np.ndarray,
    n_boot: int,
    random_state: int | np.random.Generator | None,
    stratified: bool,
    groups: object | None = None,
) -> Indices:
    """:func:`cluster_resample_indices` with ``groups``, else :func:`resample_indices`."""
    if groups is None:
        return resample_indices(y_true, n_boot, random_state, stratified)
    return cluster_resample_indices(y_true, groups, n_boot, random_state, stratified)


def _blocks(idx: Indices):
    """Resamples in blocks of equal length: the array in chunks, or each cluster row alone."""
    if isinstance(idx, np.ndarray):
        for start in range(0, len(idx), _CHUNK_ROWS):
            yield idx[start : start + _CHUNK_ROWS]
    else:
        for row in idx:
            yield row[None, :]


def _distribution(y: np.ndarray, p: np.ndarray, idx: Indices, spec: _Spec) -> BootstrapDistribution:
    values, n_skipped = [], 0
    for rows in _blocks(idx):
        y_rows, p_rows = y[rows], p[rows]
        if spec.needs_both_classes:
            n_pos = y_rows.sum(axis=1)
            keep = (n_pos > 0) & (n_pos < y_rows.shape[1])
            n_skipped += int((~keep).sum())
            y_rows, p_rows = y_rows[keep], p_rows[keep]
        if spec.rows is not None:
            values.append(spec.rows(y_rows, p_rows))
        else:
            values.append(
                np.array([spec.scalar(a, b) for a, b in zip(y_rows, p_rows, strict=True)])
            )
    out = np.concatenate(values).astype(np.float64)
    if out.size == 0:
        raise ValueError(
            f"all {len(idx)} bootstrap resamples had a single class; use stratified=True"
        )
    return BootstrapDistribution(float(spec.scalar(y, p)), out, n_skipped)


def bootstrap_distribution(
    y_true: object,
    y_pred: object,
    metric: Metric,
    *,
    n_boot: int = 1000,
    random_state: int | np.random.Generator | None = 0,
    stratified: bool = True,
    threshold: float = 0.5,
    groups: object | None = None,
) -> BootstrapDistribution:
    """The metric on the data and on ``n_boot`` resamples (see :func:`bootstrap_ci`)."""
    y, p = _check_inputs(y_true, y_pred, metric)
    spec = _spec(metric, y, threshold)
    idx = draw_indices(y, n_boot, random_state, stratified, groups)
    return _distribution(y, p, idx, spec)


def _warn_skipped(name: str, dist: BootstrapDistribution, n_boot: int) -> None:
    if dist.n_skipped:
        warnings.warn(
            f"{name}: {dist.n_skipped} of {n_boot} bootstrap resamples had a single class "
            "and were skipped; stratified=True avoids this",
            RuntimeWarning,
            stacklevel=3,
        )


def bootstrap_ci(
    y_true: object,
    y_pred: object,
    metric: Metric,
    n_boot: int = 1000,
    alpha: float = 0.05,
    random_state: int | np.random.Generator | None = 0,
    stratified: bool = True,
    *,
    threshold: float = 0.5,
    groups: object | None = None,
) -> CI:
    """Point estimate and percentile bootstrap interval of one metric.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Labels and predictions (probabilities for binary metrics).
    metric : str or callable
        A name from ``BINARY_METRICS`` or ``REGRESSION_METRICS``, or
        ``f(y_true, y_pred) -> float`` (called once per resample; resamples with one
        class are skipped when ``y_true`` is 0/1).
    n_boot : int, default=1000
    alpha : float, default=0.05
        The interval holds ``1 - alpha`` of the resampled values (95% by default).
    random_state : int, Generator or None, default=0
    stratified : bool, default=True
        Keep the class counts of 0/1 labels in every resample; ignored for continuous
        targets.
    threshold : float, default=0.5
        For the thresholded binary metrics.
    groups : array-like of shape (n_samples,), optional
        The patient of each sample: resample patients, not samples (cluster bootstrap).

    Returns
    -------
    CI
        ``(point, lo, hi)``; ``point`` is the metric on all the data.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    dist = bootstrap_distribution(
        y_true,
        y_pred,
        metric,
        n_boot=n_boot,
        random_state=random_state,
        stratified=stratified,
        threshold=threshold,
        groups=groups,
    )
    name = metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")
    _warn_skipped(name, dist, n_boot)
    return dist.ci(alpha)


def metrics_with_ci(
    y_true: object,
    y_pred: object,
    *,
    task: str = "binary",
    threshold: float | None = 0.5,
    metrics: Sequence[str] | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    random_state: int | np.random.Generator | None = 0,
    stratified: bool = True,
    groups: object | None = None,
) -> dict[str, CI]:
    """A table ``metric -> (point, lo, hi)``; all metrics share the same resamples.

    ``task="binary"`` gives the metrics of :func:`binary_metrics` at ``threshold`` (None
    means 0.5); ``task="regression"`` those of :func:`regression_metrics`. ``metrics``
    picks a subset; ``groups`` (the patient of each sample) resamples patients. Render it
    with :func:`format_table`.
    """
    if task not in ("binary", "regression"):
        raise ValueError(f"task must be 'binary' or 'regression', got {task!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    known = BINARY_METRICS if task == "binary" else REGRESSION_METRICS
    names = tuple(known if metrics is None else metrics)
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"unknown {task} metrics {unknown}; choose from {known}")
    threshold = 0.5 if threshold is None else threshold
    y, p = _check_inputs(y_true, y_pred, known[0])
    idx = draw_indices(y, n_boot, random_state, stratified, groups)
    table = {}
    for name in names:
        dist = _distribution(y, p, idx, _spec(name, y, threshold))
        _warn_skipped(name, dist, n_boot)
        table[name] = dist.ci(alpha)
    return table
