"""Per-variable summary statistics over the window, for non-neural baselines.

A recurrent model is only worth its cost if it beats a gradient-boosted tree or a logistic
regression on simple summaries of the same 48 hours, so this gives those baselines exactly
the data the neural models see (same window policy and left-out-event counting as
:mod:`medseq.features.icu.discretizer`). Nothing is fitted: missing statistics are NaN and
left to the estimator (HistGradientBoosting handles NaN; the linear baseline imputes).

Columns, variable-major: ``<var>_last, <var>_min, <var>_max, <var>_mean, <var>_count,
<var>_first`` for each variable (``count`` is 0, the others NaN, when the variable was not
observed), then the static descriptors: continuous ones raw, categorical ones
(:data:`~medseq.features.icu.static.CATEGORIES`) one-hot ``<name>=<category>`` (all NaN when
missing or unexpected; Gender stays a single 0/1 column).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from medseq.features.icu.discretizer import as_subject_ids, index_events, sort_by_cell_time
from medseq.features.icu.static import CATEGORIES, static_rows
from medseq.schema import ReadReport
from medseq.sources.physionet2012 import DESCRIPTORS, VARIABLES

logger = logging.getLogger(__name__)

STATISTICS: tuple[str, ...] = ("last", "min", "max", "mean", "count", "first")


def summary_features(
    events: pd.DataFrame,
    static: pd.DataFrame,
    subject_ids: Sequence[int] | np.ndarray,
    *,
    variables: Sequence[str] = VARIABLES,
    window_hours: float = 48.0,
    static_columns: Sequence[str] = DESCRIPTORS,
    report: ReadReport | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Summaries of each subject's events in ``[0, window_hours]`` plus descriptors.

    Parameters
    ----------
    events : DataFrame
        Long table ``subject_id, time, code, value`` (any row order).
    static : DataFrame
        Indexed by ``subject_id``, holding ``static_columns``.
    subject_ids : sequence of int, length N
        Rows of the result, in this order.
    variables : sequence of str, default=PhysioNet 2012's 37 ``VARIABLES``
        Fixed, so train and test matrices share columns.
    window_hours : float, default=48.0
    static_columns : sequence of str, default=DESCRIPTORS
    report : ReadReport, optional
        When given, the counts of left-out events (unknown codes, NaN values, outside the
        window, other subjects) are added to it; they are always logged.

    Returns
    -------
    matrix : ndarray of float64, shape (N, len(variables) * 6 + n_static)
    feature_names : list of str
    """
    ids = as_subject_ids(subject_ids, "summary_features")
    variables = [str(v) for v in variables]
    rows = static_rows(static, ids, static_columns)
    index = index_events(events, ids, variables, window_hours=window_hours, where="summary")
    logger.info("summary_features: %s", index.report.summary())
    if report is not None:
        for reason, n in index.report.counts.items():
            report.add(reason, n)
    f = len(variables)
    stats = _cell_statistics(index.row * f + index.var, index.time, index.value, len(ids) * f)
    series = stats.reshape(len(ids), f * len(STATISTICS))
    names = [f"{v}_{s}" for v in variables for s in STATISTICS]
    static_part, static_names = _static_columns(rows, list(static_columns))
    return np.hstack([series, static_part]), names + static_names


def _cell_statistics(
    cell: np.ndarray, time: np.ndarray, value: np.ndarray, n_cells: int
) -> np.ndarray:
    """The :data:`STATISTICS` of each cell, shape (n_cells, 6); count 0, others NaN if empty."""
    out = np.full((n_cells, len(STATISTICS)), np.nan)
    out[:, STATISTICS.index("count")] = 0.0
    if len(cell) == 0:
        return out
    order = sort_by_cell_time(cell, time, value)
    c, v = cell[order], value[order]
    starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
    ends = np.r_[starts[1:], len(c)] - 1
    count = ends - starts + 1
    columns = {
        "last": v[ends],
        "min": np.minimum.reduceat(v, starts),
        "max": np.maximum.reduceat(v, starts),
        "mean": np.add.reduceat(v, starts) / count,
        "count": count.astype(np.float64),
        "first": v[starts],
    }
    out[c[starts]] = np.column_stack([columns[s] for s in STATISTICS])
    return out


def _static_columns(rows: np.ndarray, columns: list[str]) -> tuple[np.ndarray, list[str]]:
    """Raw continuous descriptors; one-hot categoricals (NaN when missing or unexpected)."""
    parts, names = [], []
    for j, col in enumerate(columns):
        x = rows[:, j]
        cats = CATEGORIES.get(col)
        if cats is None or len(cats) == 2:
            valid = np.isnan(x) | (np.isin(x, cats) if cats else True)
            parts.append(np.where(valid, x, np.nan)[:, None])
            names.append(col)
            continue
        onehot = (x[:, None] == np.asarray(cats)[None, :]).astype(np.float64)
        onehot[~onehot.any(axis=1)] = np.nan
        parts.append(onehot)
        names += [f"{col}={c:g}" for c in cats]
    if not parts:
        return np.empty((len(rows), 0)), names
    return np.hstack(parts), names


GRID_STATISTICS: tuple[str, ...] = ("mean", "min", "max", "last", "log_count")


def grid_summary(z: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-variable statistics of the normalised observations on a grid, shape (N, 5 F).

    This is the "summary fusion" input of the neural models: mean, min, max and last
    observed value (in normalised units, 0 when never observed) and ``log1p`` of the count
    of observed bins, variable-major (``GRID_STATISTICS`` for each variable). Computed from
    the same normalised grid the recurrent branch reads, so it adds no second pipeline and
    can be kept up to date incrementally by a streaming engine.

    Parameters
    ----------
    z : ndarray of shape (N, T, F)
        Normalised values, any value where ``mask`` is 0.
    mask : ndarray of shape (N, T, F)
        1 where observed.
    """
    observed = mask > 0
    count = observed.sum(axis=1)  # (N, F)
    seen = count > 0
    safe = np.where(observed, z, 0.0)
    mean = np.where(seen, safe.sum(axis=1) / np.maximum(count, 1), 0.0)
    low = np.where(seen, np.where(observed, z, np.inf).min(axis=1), 0.0)
    high = np.where(seen, np.where(observed, z, -np.inf).max(axis=1), 0.0)
    t_last = z.shape[1] - 1 - np.argmax(observed[:, ::-1, :], axis=1)  # (N, F)
    last = np.take_along_axis(safe, t_last[:, None, :], axis=1)[:, 0, :]
    last = np.where(seen, last, 0.0)
    stats = np.stack([mean, low, high, last, np.log1p(count)], axis=2)  # (N, F, 5)
    return stats.reshape(len(z), -1).astype(np.float32)
