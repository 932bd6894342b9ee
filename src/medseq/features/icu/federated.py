"""Fit one :class:`~medseq.features.icu.featurizer.ICUFeaturizer` across sites, from aggregates.

Three stages (:class:`medseq.features.federated.FederatedFit`), each revealing only
per-variable aggregates of a site:

1. ``codes``: the variable names a site observed. The server takes their union.
2. ``bounds``: the site fits the featurizer on its own training subjects and sends its state
   (per variable: observation count, winsorisation quantiles, log choice, mean, std). The
   server combines the bounds as count-weighted means of the site quantiles and the log
   choice as a count-weighted vote (an approximation of the pooled quantiles and skewness
   test, which would need the raw values).
3. ``moments``: with those common bounds and log choices, each site sends count, sum and
   sum of squares of its transformed values; the server turns them into the exact pooled
   mean and standard deviation (``var = E[z^2] - E[z]^2``).

The static descriptors' continuous columns go through the same three steps. The result is
an ordinary fitted featurizer (``ICUFeaturizer.from_state_dict``), identical at every site.
:class:`HourlyFederatedFit` runs the same three stages for the per-hour wrapper
(:class:`~medseq.features.icu.hourly.HourlyICUFeaturizer`, whose state is the inner grid's
plus a kind), on the events the wrapper itself keeps (those before the window's right edge).
What leaks: counts and moments per variable and site, and the site's 0.5 % / 99.5 %
quantiles, which in a small site lie close to single patients' extreme values; a deployment
that must hide those should set ``clip_quantiles`` to None or add noise to them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from medseq.features.federated import FederatedFit, require_replies
from medseq.features.icu.discretizer import index_events
from medseq.features.icu.featurizer import ICUFeaturizer
from medseq.features.icu.hourly import STATE_VERSION as HOURLY_STATE_VERSION
from medseq.features.icu.hourly import HourlyICUFeaturizer
from medseq.features.icu.normalizer import Normalizer
from medseq.features.icu.static import static_rows

#: ``(data, ids) -> (events, static)``: a dataset's event and descriptor tables.
Tables = Callable[[Any, np.ndarray], tuple[pd.DataFrame, pd.DataFrame]]


def _featurizer(features: dict[str, Any], variables: Sequence[str] | None) -> ICUFeaturizer:
    params = dict(features)
    if variables is not None:
        params["variables"] = list(variables)
    return ICUFeaturizer(**params)


def site_codes(events: pd.DataFrame, ids: np.ndarray) -> dict[str, Any]:
    """Stage 1: the variable names with a finite value among the site's training subjects."""
    keep = events["subject_id"].isin(ids) & np.isfinite(events["value"])
    return {"codes": sorted(str(c) for c in events.loc[keep, "code"].dropna().unique())}


def site_bounds(
    events: pd.DataFrame,
    static: pd.DataFrame,
    ids: np.ndarray,
    features: dict[str, Any],
    variables: list[str],
) -> dict[str, Any]:
    """Stage 2: the site's own fitted featurizer state (aggregates only)."""
    return _featurizer(features, variables).fit(events, static, ids).state_dict()


def _site_observations(
    events: pd.DataFrame, static: pd.DataFrame, ids: np.ndarray, featurizer: ICUFeaturizer
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(variable, value) of the time series and of the static continuous columns."""
    ids = np.asarray(ids, dtype=np.int64)
    index = index_events(
        events,
        ids,
        featurizer.feature_names_,
        window_hours=featurizer.discretizer_.window_hours,
        where="federated statistics",
    )
    columns = featurizer.static_encoder_._continuous()
    rows = static_rows(static, ids, columns)
    var = np.broadcast_to(np.arange(len(columns)), rows.shape)
    seen = ~np.isnan(rows)
    return (index.var, index.value), (var[seen], rows[seen])


def _sums(normalizer: Normalizer, var: np.ndarray, value: np.ndarray) -> dict[str, list[float]]:
    """Count, sum and sum of squares per variable of the clipped, logged values."""
    f = len(normalizer.names_)
    x = np.clip(value, normalizer.lower_[var], normalizer.upper_[var])
    x = np.where(normalizer.log_[var], np.log1p(np.maximum(x, 0.0)), x)
    return {
        "n": np.bincount(var, minlength=f).astype(float).tolist(),
        "sum": np.bincount(var, weights=x, minlength=f).tolist(),
        "sumsq": np.bincount(var, weights=x * x, minlength=f).tolist(),
    }


def site_moments(
    events: pd.DataFrame, static: pd.DataFrame, ids: np.ndarray, partial_state: dict[str, Any]
) -> dict[str, Any]:
    """Stage 3: count, sum and sum of squares under the server's common bounds and logs."""
    featurizer = ICUFeaturizer.from_state_dict(partial_state)
    (ts_var, ts_value), (st_var, st_value) = _site_observations(events, static, ids, featurizer)
    return {
        "series": _sums(featurizer.normalizer_, ts_var, ts_value),
        "static": _sums(featurizer.static_encoder_.normalizer_, st_var, st_value),
    }


# ------------------------------------------------------------------ server side


def merge_codes(replies: Sequence[dict[str, Any]]) -> list[str]:
    """The union of the sites' variable names, sorted."""
    require_replies("codes", replies)
    return sorted(set().union(*(r["codes"] for r in replies)))


def _merge_normalizer(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Count-weighted bounds and log vote; mean 0 and std 1 until the moments come."""
    names = states[0]["names"]
    if any(s["names"] != names for s in states):
        raise ValueError("federated statistics: sites sent states for different variables")
    n = np.array([s["n_observed"] for s in states], dtype=float)  # (sites, F)
    total = n.sum(axis=0)
    merged = copy.deepcopy(states[0])

    def weighted(key: str) -> list[float | None]:
        vals = np.array([[np.nan if v is None else v for v in s[key]] for s in states], float)
        w = np.where(np.isfinite(vals), n, 0.0)
        num = np.nansum(np.where(w > 0, vals * w, 0.0), axis=0)
        den = w.sum(axis=0)
        return [float(a / b) if b > 0 else None for a, b in zip(num, den, strict=True)]

    log_votes = (np.array([s["log"] for s in states], float) * n).sum(axis=0)
    log = (total > 0) & (log_votes > total / 2)
    lower = weighted("lower")
    merged["lower"] = [
        None if lo is None else (max(lo, 0.0) if lg else lo)
        for lo, lg in zip(lower, log, strict=True)
    ]
    merged["upper"] = weighted("upper")
    merged["log"] = [bool(v) for v in log]
    merged["n_observed"] = [int(v) for v in total]
    merged["mean"] = [0.0] * len(names)
    merged["std"] = [1.0] * len(names)
    return merged


def merge_bounds(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stage 2 on the server: one featurizer state with common bounds and log choices."""
    require_replies("bounds", states)
    merged = copy.deepcopy(states[0])
    merged["normalizer"] = _merge_normalizer([s["normalizer"] for s in states])
    merged["static"]["normalizer"] = _merge_normalizer([s["static"]["normalizer"] for s in states])
    return merged


def _moments(sums: Sequence[dict[str, list[float]]]) -> tuple[list[float], list[float]]:
    n = np.sum([s["n"] for s in sums], axis=0)
    total = np.sum([s["sum"] for s in sums], axis=0)
    sq = np.sum([s["sumsq"] for s in sums], axis=0)
    safe = np.maximum(n, 1.0)
    mean = np.where(n > 0, total / safe, 0.0)
    std = np.sqrt(np.maximum(sq / safe - mean**2, 0.0))
    std = np.where((n > 0) & (std > 1e-12 * np.maximum(1.0, np.abs(mean))), std, 1.0)
    return mean.tolist(), std.tolist()


def merge_moments(partial: dict[str, Any], replies: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stage 3 on the server: the pooled means and standard deviations; the final state."""
    require_replies("moments", replies)
    state = copy.deepcopy(partial)
    state["normalizer"]["mean"], state["normalizer"]["std"] = _moments(
        [r["series"] for r in replies]
    )
    static = state["static"]["normalizer"]
    static["mean"], static["std"] = _moments([r["static"] for r in replies])
    return state


class ICUFederatedFit(FederatedFit):
    """The three-stage federated fit of an :class:`ICUFeaturizer` (module docstring).

    Parameters
    ----------
    features : dict
        The ``[features]`` table: the featurizer's keyword arguments.
    tables : callable ``(data, ids) -> (events, static)``
        A site's event and descriptor tables (the dataset module knows its data object).
    """

    stages = ("codes", "bounds", "moments")

    def __init__(self, features: dict[str, Any], tables: Tables) -> None:
        self.features = dict(features)
        self.tables = tables

    def site_statistics(
        self, stage: str, payload: Any, data: Any, ids: np.ndarray
    ) -> dict[str, Any]:
        self.check_stage(stage)
        ids = np.asarray(ids, dtype=np.int64)
        events, static = self.tables(data, ids)
        if stage == "codes":
            return site_codes(events, ids)
        if stage == "bounds":
            return site_bounds(events, static, ids, self.features, payload)
        return site_moments(events, static, ids, payload)

    def merge(self, stage: str, payload: Any, replies: Sequence[dict[str, Any]]) -> Any:
        self.check_stage(stage)
        if stage == "codes":
            return merge_codes(replies)
        if stage == "bounds":
            return merge_bounds(replies)
        return merge_moments(payload, replies)

    def from_statistics(self, merged: dict[str, Any]) -> ICUFeaturizer:
        return ICUFeaturizer.from_state_dict(merged)


class HourlyFederatedFit(ICUFederatedFit):
    """The three-stage federated fit of an :class:`HourlyICUFeaturizer`.

    The wrapper fits its inner grid on the events strictly before the window's right edge
    (an event at ``n_steps * step_hours`` would be the next hour's data); each site applies
    the same cut to its own tables before every stage, so the merged statistics are those a
    pooled ``HourlyICUFeaturizer.fit`` would see, and the server wraps the merged grid state.

    Parameters
    ----------
    features : dict
        The inner :class:`ICUFeaturizer`'s keyword arguments (``n_steps``, ...).
    tables : callable ``(data, ids) -> (events, static)``
        A site's event and descriptor tables.
    """

    def __init__(self, features: dict[str, Any], tables: Tables) -> None:
        unfitted = HourlyICUFeaturizer(**features)  # checks the arguments, knows the edge
        super().__init__(features, lambda data, ids: _before_edge(unfitted, tables(data, ids)))

    def merge(self, stage: str, payload: Any, replies: Sequence[dict[str, Any]]) -> Any:
        """As the grid's; the last stage's state is wrapped as the hourly featurizer's (the
        server rebuilds the featurizer from that state by its kind)."""
        merged = super().merge(stage, payload, replies)
        if stage != self.stages[-1]:
            return merged
        return {"kind": HourlyICUFeaturizer.kind, "version": HOURLY_STATE_VERSION, "grid": merged}

    def from_statistics(self, merged: dict[str, Any]) -> HourlyICUFeaturizer:  # type: ignore[override]
        return HourlyICUFeaturizer.from_state_dict(merged)


def _before_edge(
    featurizer: HourlyICUFeaturizer, tables: tuple[pd.DataFrame, pd.DataFrame]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    events, static = tables
    return featurizer.window_events(events), static
