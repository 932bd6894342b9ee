"""Events (long table) onto a regular time grid: values, mask, time since last observation.

Every step is vectorised with numpy index arithmetic, never a Python loop over rows or
subjects: an event's subject row comes from ``np.searchsorted`` on the requested ids, its
variable from ``pandas.factorize`` of the codes, its bin from ``floor(time / step_hours)``;
the grid is filled by one fancy-index scatter and forward-filled with
``np.maximum.accumulate`` over observation indices (8000 PhysioNet 2012 stays, about
3.5 M events, take about a second).

Window policy
    An event is kept when ``0 <= time <= n_steps * step_hours``. Bin ``t`` covers
    ``[t * step_hours, (t + 1) * step_hours)``; the right edge of the window itself
    (``48:00`` for 48 bins of 1 h) falls in the last bin, so a stay's final chart is kept.
    Earlier or later events are excluded and counted (``before_window``, ``after_window``).
Several observations of one variable in one bin
    ``aggregate="last"`` keeps the latest by time (the freshest value is what a clinician
    would read at the end of the hour); observations at exactly the same time are ordered
    by value, so the result never depends on the row order of the table.
    ``aggregate="mean"`` averages them. Either way the surplus is counted
    (``aggregated_in_bin``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medseq.schema import EVENT_COLUMNS, DataError, ReadReport

logger = logging.getLogger(__name__)

AGGREGATES: tuple[str, ...] = ("last", "mean")


@dataclass(frozen=True)
class EventIndex:
    """The kept events of a table as parallel arrays, each of shape (E,).

    Attributes
    ----------
    row : ndarray of int64
        Position of the event's subject in the requested ``subject_ids``.
    var : ndarray of int64
        Position of the event's code in the variable list.
    time : ndarray of float64
        Hours since the subject's reference time.
    value : ndarray of float64
        Observed value (finite).
    report : ReadReport
        Counts of every event left out, keyed by reason (see :func:`index_events`).
    """

    row: np.ndarray
    var: np.ndarray
    time: np.ndarray
    value: np.ndarray
    report: ReadReport


def as_subject_ids(subject_ids: Sequence[int] | np.ndarray, where: str) -> np.ndarray:
    """Return ``subject_ids`` as a 1-D int64 array, refusing duplicates and empty input."""
    ids = np.asarray(subject_ids)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"{where}: subject_ids must be a non-empty 1-D sequence, got {ids.shape}")
    if not (np.issubdtype(ids.dtype, np.integer) or ids.dtype == object):
        raise ValueError(f"{where}: subject_ids must be integers, got dtype {ids.dtype}")
    ids = ids.astype(np.int64)
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"{where}: subject_ids repeats {uniq[counts > 1][:5].tolist()}")
    return ids


def event_arrays(events: pd.DataFrame, where: str) -> tuple[np.ndarray, ...]:
    """``subject_id`` (int64), ``time`` (float64, finite) and ``value`` (float64) columns."""
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise DataError(f"{where}: missing columns {missing}; expected {list(EVENT_COLUMNS)}")
    try:
        subject = events["subject_id"].to_numpy(dtype=np.int64)
        time = events["time"].to_numpy(dtype=np.float64)
        value = events["value"].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as err:
        raise DataError(f"{where}: non-numeric subject_id, time or value ({err})") from None
    if not np.isfinite(time).all():
        row = int(np.flatnonzero(~np.isfinite(time))[0])
        raise DataError(f"{where}: row {row}: time must be finite, got {time[row]!r}")
    return subject, time, value


def _code_index(
    codes: pd.Series, variables: Sequence[str], requested: np.ndarray, report: ReadReport
) -> np.ndarray:
    """Variable position of each code, -1 for unknown or missing codes.

    Only the events of requested subjects are counted (by code name).
    """
    labels, uniques = pd.factorize(codes)
    lookup = pd.Index(list(variables)).get_indexer(pd.Index(uniques.astype(object)))
    var = np.where(labels >= 0, lookup[np.maximum(labels, 0)], -1).astype(np.int64)
    report.add("missing_code", int((requested & (labels < 0)).sum()))
    unknown = np.flatnonzero(lookup < 0)
    if unknown.size:
        counts = np.bincount(labels[requested & (labels >= 0)], minlength=len(uniques))
        for k in unknown:
            report.add(f"unknown_code:{uniques[k]}", int(counts[k]))
    return var


def index_events(
    events: pd.DataFrame,
    subject_ids: np.ndarray,
    variables: Sequence[str],
    *,
    window_hours: float,
    where: str = "events",
) -> EventIndex:
    """Locate each event on (subject row, variable) and keep those usable on the grid.

    Each left-out event is counted once, under the first reason that applies, in this
    order: ``not_requested_subject`` (a subject not in ``subject_ids``: the table may hold a
    whole set while a split is transformed), ``missing_code`` / ``unknown_code:<code>``
    (not one of ``variables``), ``nan_value`` (a code-only event, which carries no value
    to put on the grid), ``before_window`` (``time < 0``) or ``after_window``
    (``time > window_hours``).

    Parameters
    ----------
    events : DataFrame
        Long table ``subject_id, time, code, value`` in any row order.
    subject_ids : ndarray of int64, shape (N,)
        The subjects to keep, without repeats; ``row`` indexes this order.
    variables : sequence of str, length F
    window_hours : float
        Events later than this are left out.
    """
    subject, time, value = event_arrays(events, where)
    report = ReadReport(source=where, n_subjects=len(subject_ids), n_events=len(subject))
    order = np.argsort(subject_ids, kind="stable")
    sorted_ids = subject_ids[order]
    pos = np.minimum(np.searchsorted(sorted_ids, subject), len(sorted_ids) - 1)
    requested = sorted_ids[pos] == subject
    report.add("not_requested_subject", int((~requested).sum()))
    var = _code_index(events["code"], variables, requested, report)
    known = requested & (var >= 0)
    finite = np.isfinite(value)
    report.add("nan_value", int((known & ~finite).sum()))
    keep = known & finite
    report.add("before_window", int((keep & (time < 0)).sum()))
    report.add("after_window", int((keep & (time > window_hours)).sum()))
    keep &= (time >= 0) & (time <= window_hours)
    return EventIndex(
        row=order[pos[keep]].astype(np.int64),
        var=var[keep],
        time=time[keep],
        value=value[keep],
        report=report,
    )


def bin_of(time: np.ndarray, step_hours: float, n_steps: int) -> np.ndarray:
    """Bin ``floor(time / step_hours)``, with the window's right edge in the last bin.

    A time within 1e-9 bins below a boundary counts as on it, so that a step such as
    1/6 h (not exact in binary) puts 00:30 in bin 3, not bin 2.
    """
    bins = np.floor(time / step_hours + 1e-9).astype(np.int64)
    return np.minimum(bins, n_steps - 1)


def scatter_grid(
    index: EventIndex,
    shape: tuple[int, int, int],
    step_hours: float,
    aggregate: str = "last",
) -> tuple[np.ndarray, np.ndarray]:
    """Raw values and mask on the grid, one cell per (subject, bin, variable).

    Returns
    -------
    values : ndarray of float64, shape (N, T, F)
        The aggregated observation, NaN where nothing was observed.
    mask : ndarray of bool, shape (N, T, F)
    """
    n, t, f = shape
    cell = (index.row * t + bin_of(index.time, step_hours, t)) * f + index.var
    flat = np.full(n * t * f, np.nan)
    if aggregate == "mean":
        counts = np.bincount(cell, minlength=n * t * f)
        sums = np.bincount(cell, weights=index.value, minlength=n * t * f)
        seen = counts > 0
        flat[seen] = sums[seen] / counts[seen]
        n_cells = int(seen.sum())
    else:
        order = sort_by_cell_time(cell, index.time, index.value)
        cell_sorted = cell[order]
        is_last = np.ones(len(order), dtype=bool)
        is_last[:-1] = cell_sorted[1:] != cell_sorted[:-1]
        flat[cell_sorted[is_last]] = index.value[order[is_last]]
        n_cells = int(is_last.sum())
    index.report.add("aggregated_in_bin", len(cell) - n_cells)
    values = flat.reshape(n, t, f)
    return values, ~np.isnan(values)


def sort_by_cell_time(cell: np.ndarray, time: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Order sorting events by (cell, time, value).

    Fast path: when rows are already in time order within each subject (as readers
    return them) a stable sort on ``cell`` alone is enough unless two events of one cell
    share a time; otherwise fall back to the full three-key ``lexsort``.
    """
    order = np.argsort(cell, kind="stable")
    c, tm = cell[order], time[order]
    same = c[1:] == c[:-1]
    if not (same & (tm[1:] <= tm[:-1])).any():
        return order
    return np.lexsort((value, time, cell))


def last_observed(mask: np.ndarray) -> np.ndarray:
    """Index of the latest observed step at or before ``t``, -1 before the first.

    Parameters
    ----------
    mask : ndarray of bool, shape (N, T, F)

    Returns
    -------
    ndarray of int32, shape (N, T, F)
    """
    steps = np.arange(mask.shape[1], dtype=np.int32).reshape(1, -1, 1)
    return np.maximum.accumulate(np.where(mask, steps, np.int32(-1)), axis=1)


def forward_fill(values: np.ndarray, last: np.ndarray, before_first: np.ndarray) -> np.ndarray:
    """Last observation carried forward along time (axis 1).

    Parameters
    ----------
    values : ndarray, shape (N, T, F)
    last : ndarray of int, shape (N, T, F)
        From :func:`last_observed`.
    before_first : ndarray, shape (F,)
        Value of the steps before a variable's first observation.
    """
    filled = np.take_along_axis(values, np.maximum(last, 0), axis=1)
    return np.where(last >= 0, filled, before_first)


def time_since_observed(last: np.ndarray, step_hours: float) -> np.ndarray:
    r"""GRU-D's :math:`\delta` in hours, from the bin start times :math:`s_t = t\,\Delta`.

    Che et al. (2018), Sci. Rep. 8:6085, eq. 2:
    :math:`\delta_t = s_t - s_{t-1} + \delta_{t-1}` if the variable was not observed at
    :math:`t-1`, else :math:`s_t - s_{t-1}`, with :math:`\delta_0 = 0`. Unrolled, this is
    :math:`\Delta\,(t - \max(k, 0))` with :math:`k` the last observed step before
    :math:`t` (``last`` at :math:`t-1`), which is how it is computed here.

    Parameters
    ----------
    last : ndarray of int, shape (N, T, F)
        From :func:`last_observed`.

    Returns
    -------
    ndarray of float64, shape (N, T, F)
    """
    n, t, f = last.shape
    previous = np.zeros((n, t, f), dtype=np.int32)
    previous[:, 1:] = np.maximum(last[:, :-1], 0)
    steps = np.arange(t, dtype=np.int32).reshape(1, -1, 1)
    return (steps - previous) * float(step_hours)


def sequence_lengths(mask: np.ndarray) -> np.ndarray:
    """Bins up to and including the last one with any observation, at least 1; (N,) int64."""
    any_obs = np.asarray(mask.any(axis=2))  # (N, T)
    t = mask.shape[1]
    last = t - 1 - np.argmax(any_obs[:, ::-1], axis=1)
    return np.where(any_obs.any(axis=1), last + 1, 1).astype(np.int64)


def padding_mask(lengths: np.ndarray, n_steps: int) -> np.ndarray:
    """True on the padding bins ``t >= lengths``; shape (N, T, 1) to broadcast over F."""
    return (np.arange(n_steps).reshape(1, -1) >= lengths.reshape(-1, 1))[:, :, None]


@dataclass(frozen=True)
class Grid:
    """Events of N subjects on T bins of F variables, before normalisation.

    Attributes
    ----------
    values : ndarray of float64, shape (N, T, F)
        Raw aggregated value per bin, NaN where unobserved (padding included).
    mask : ndarray of bool, shape (N, T, F)
    delta : ndarray of float64, shape (N, T, F)
        Hours since the variable was last observed (GRU-D), 0 on padding bins.
    last : ndarray of int32, shape (N, T, F)
        Latest observed bin at or before each bin, -1 before the first
        (:func:`last_observed`), for forward filling.
    lengths : ndarray of int64, shape (N,)
    report : ReadReport
        Left-out and aggregated events (see :func:`index_events`), plus
        ``subjects_without_events``.
    """

    values: np.ndarray
    mask: np.ndarray
    delta: np.ndarray
    last: np.ndarray
    lengths: np.ndarray
    report: ReadReport


@dataclass(frozen=True)
class Discretizer:
    """Put events on ``n_steps`` bins of ``step_hours``; see the module doc for the policies.

    Parameters
    ----------
    step_hours : float, default=1.0
        Bin width in hours.
    n_steps : int, default=48
        ``T``, the number of bins; the window is ``[0, n_steps * step_hours]``.
    aggregate : {"last", "mean"}, default="last"
        How several observations of a variable in one bin become one value.

    Examples
    --------
    >>> import pandas as pd
    >>> events = pd.DataFrame({"subject_id": [1, 1], "time": [0.5, 2.0],
    ...                        "code": ["HR", "HR"], "value": [80.0, 90.0]})
    >>> grid = Discretizer(n_steps=4).transform(events, np.array([1]), ["HR"])
    >>> grid.mask[0, :, 0].astype(int).tolist(), grid.delta[0, :, 0].tolist()
    ([1, 0, 1, 0], [0.0, 1.0, 2.0, 0.0])
    >>> grid.lengths.tolist()
    [3]
    """

    step_hours: float = 1.0
    n_steps: int = 48
    aggregate: str = "last"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.step_hours) and self.step_hours > 0):
            raise ValueError(f"step_hours must be a finite number > 0, got {self.step_hours!r}")
        if isinstance(self.n_steps, bool) or not isinstance(self.n_steps, (int, np.integer)):
            raise TypeError(f"n_steps must be an int, got {type(self.n_steps).__name__}")
        if self.n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {self.n_steps}")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {AGGREGATES}, got {self.aggregate!r}")

    @property
    def window_hours(self) -> float:
        """Right edge of the window, ``n_steps * step_hours`` (itself in the last bin)."""
        return self.n_steps * float(self.step_hours)

    def transform(
        self,
        events: pd.DataFrame,
        subject_ids: np.ndarray,
        variables: Sequence[str],
        where: str = "events",
    ) -> Grid:
        """Grid of ``events`` for ``subject_ids`` (rows in that order) and ``variables``."""
        index = index_events(
            events, subject_ids, variables, window_hours=self.window_hours, where=where
        )
        shape = (len(subject_ids), self.n_steps, len(variables))
        values, mask = scatter_grid(index, shape, self.step_hours, self.aggregate)
        lengths = sequence_lengths(mask)
        last = last_observed(mask)
        delta = time_since_observed(last, self.step_hours)
        delta[np.broadcast_to(padding_mask(lengths, self.n_steps), delta.shape)] = 0.0
        n_empty = int((np.bincount(index.row, minlength=len(subject_ids)) == 0).sum())
        index.report.add("subjects_without_events", n_empty)
        return Grid(values, mask, delta, last, lengths, index.report)
