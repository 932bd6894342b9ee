"""Hand-made causal history features per step, for tree baselines of per-step labelling.

The winning PhysioNet/CinC 2019 entries were gradient-boosted trees on features that
summarise each variable's recent history at every hour (Morrill et al. 2019; Yang et al.
2019): the last value, its change, rolling statistics, time since the last measurement and
how often it was measured. A tree sees one row per hour, so whatever history it needs must
be in that row; these features put it there, computed from hours ``<= t`` only.

Input: a per-step featurizer's ``values`` ``(N, T, C)`` whose channels pair each variable
``v`` with an ``observed:v`` flag (:class:`~medseq.features.icu.hourly.HourlyICUFeaturizer`
lays them out so); other channels (static descriptors) are passed through. Per variable
and step ``t``, with ``x`` the value where observed (NaN elsewhere) and ``last`` its forward
fill (NaN before the first observation; trees split on missing values natively):

``last:v``          the last observed value at or before ``t``
``change_<W>h:v``   ``last[t] - last[max(t - W, 0)]``
``mean_<W>h:v``, ``min_<W>h:v``, ``max_<W>h:v``   of ``last`` over hours ``t-W+1 .. t``
``hours_since:v``   ``t`` minus the hour of the last observation (NaN: never observed)
``count:v``         observations up to ``t``

Values are the featurizer's normalised ones (a per-variable monotone map of the raw value),
which trees do not mind.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

KINDS = ("last", "change", "mean", "min", "max", "hours_since", "count")
OBSERVED = "observed:"
CHUNK = 256


def history_feature_names(channel_names: Sequence[str], window_hours: int = 6) -> list[str]:
    """Names of the columns :func:`history_features` returns, in order."""
    variables, passed = _split_channels(channel_names)
    w = int(window_hours)
    kinds = ["last", f"change_{w}h", f"mean_{w}h", f"min_{w}h", f"max_{w}h", "hours_since", "count"]
    return [f"{k}:{v}" for k in kinds for v in variables] + [channel_names[j] for j in passed]


def _split_channels(channel_names: Sequence[str]) -> tuple[list[str], list[int]]:
    """The paired variables and the indices of the channels passed through."""
    names = list(channel_names)
    flagged = {n[len(OBSERVED) :] for n in names if n.startswith(OBSERVED)}
    variables = [n for n in names if n in flagged]
    if not variables:
        raise ValueError(
            "history features need value channels paired with 'observed:<name>' flags; "
            f"got channels {names[:6]}..."
        )
    passed = [j for j, n in enumerate(names) if n not in flagged and not n.startswith(OBSERVED)]
    return variables, passed


def history_features(
    values: np.ndarray,
    lengths: np.ndarray,
    channel_names: Sequence[str],
    window_hours: int = 6,
) -> np.ndarray:
    """``(N, T, P)`` float32 history features (see the module doc); NaN past ``lengths``.

    Parameters
    ----------
    values : ndarray of shape (N, T, C)
        Per-step inputs with ``observed:<v>`` flag channels.
    lengths : ndarray of shape (N,)
        Valid steps per sample.
    channel_names : sequence of str, length C
    window_hours : int, default=6
        ``W``, the window of the change and the rolling statistics, in steps.
    """
    if values.ndim != 3 or values.shape[2] != len(channel_names):
        raise ValueError(
            f"values must be (N, T, {len(channel_names)}) to match channel_names, "
            f"got {values.shape}"
        )
    if window_hours < 1:
        raise ValueError(f"window_hours must be >= 1, got {window_hours}")
    variables, passed = _split_channels(channel_names)
    index = {n: j for j, n in enumerate(channel_names)}
    value_idx = [index[v] for v in variables]
    flag_idx = [index[OBSERVED + v] for v in variables]
    chunks = []
    for start in range(0, len(values), CHUNK):  # bounds the (n, T, V, W) window temporaries
        part = values[start : start + CHUNK]
        flags = part[:, :, flag_idx] > 0.5
        history = _per_variable(part[:, :, value_idx], flags, window_hours)
        chunks.append(np.concatenate([history, part[:, :, passed].astype(np.float32)], axis=2))
    table = np.concatenate(chunks, axis=0)
    past = np.arange(values.shape[1])[None, :] >= np.asarray(lengths)[:, None]
    table[past] = np.nan
    return table


def _forward_fill(x: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``last`` (NaN before the first observation) and the step of the last observation
    (-1 before it), along axis 1."""
    t = np.arange(x.shape[1])[None, :, None]
    where = np.where(observed, t, -1)
    last_step = np.maximum.accumulate(where, axis=1)
    filled = np.take_along_axis(x, np.maximum(last_step, 0), axis=1)
    return np.where(last_step >= 0, filled, np.nan), last_step


def _per_variable(x: np.ndarray, observed: np.ndarray, w: int) -> np.ndarray:
    x = x.astype(np.float64)
    last, last_step = _forward_fill(x, observed)
    n_steps = x.shape[1]
    back = np.maximum(np.arange(n_steps) - w, 0)
    change = last - last[:, back]
    padded = np.concatenate([np.full((x.shape[0], w - 1, x.shape[2]), np.nan), last], axis=1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, w, axis=1)  # (N, T, V, W)
    seen = ~np.isnan(windows)
    n_seen = seen.sum(axis=3)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(seen, windows, 0.0).sum(axis=3) / n_seen
        low = np.where(seen, windows, np.inf).min(axis=3)
        high = np.where(seen, windows, -np.inf).max(axis=3)
    none = n_seen == 0
    low[none], high[none] = np.nan, np.nan
    steps = np.arange(n_steps)[None, :, None]
    since = np.where(last_step >= 0, steps - last_step, np.nan)
    count = np.cumsum(observed, axis=1)
    parts = [last, change, mean, low, high, since, count]
    return np.concatenate(parts, axis=2).astype(np.float32)
