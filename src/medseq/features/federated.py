"""Fitting a featurizer across sites from per-site statistics, never from pooled rows.

One global model reads every site's inputs, so every site must featurise alike, with one
normalisation and one vocabulary; but no site may send patient rows. Each featurizer
family therefore says how its fit splits into *stages*: in each stage every site sends
JSON-able aggregates of its own training samples (counts, sums, moments, token counts),
and the server merges them into the payload of the next stage; after the last stage the
merged payload is the fitted featurizer's ``state_dict()``.

Implementations (one per featurizer family, beside the featurizer):

* :class:`medseq.features.icu.federated.ICUFederatedFit`: variable names, then per-site
  bounds, then count / sum / sum of squares (three stages);
* :class:`medseq.features.signals.federated.BeatFederatedFit`: per-column count, mean and
  sum of squared deviations of the beat features and the rhythm summaries (one stage);
  :class:`~medseq.features.signals.federated.SignalFederatedFit`: the channel count;
* :class:`medseq.features.molecules.federated.SmilesFederatedFit`: token counts (one stage).

A featurizer family does not know a dataset's ``data`` object, so each implementation is
given ``inputs``, a callable ``(data, ids) -> what its fit reads`` (the dataset module's
business); a dataset spec exposes the bound object as ``spec.federated_fit(features)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np


class FederatedFit(ABC):
    """The staged, aggregate-only fit of one featurizer (see the module docstring).

    Subclasses set :attr:`stages` and implement :meth:`site_statistics` and :meth:`merge`.
    A site calls ``site_statistics(stage, payload, data, ids)`` with the server's latest
    payload (None in the first stage); the server calls ``merge(stage, payload, replies)``
    and, after the last stage, :meth:`from_statistics` on the result.
    """

    stages: tuple[str, ...] = ()

    @abstractmethod
    def site_statistics(
        self, stage: str, payload: Any, data: Any, ids: np.ndarray
    ) -> dict[str, Any]:
        """A site's JSON-able aggregates over its training samples ``ids`` of ``data``."""

    @abstractmethod
    def merge(self, stage: str, payload: Any, replies: Sequence[dict[str, Any]]) -> Any:
        """The next stage's payload from the sites' replies; after the last stage, the
        fitted featurizer's state (plain JSON)."""

    def from_statistics(self, merged: dict[str, Any]) -> Any:
        """The fitted featurizer of the last stage's merged state."""
        from medseq.features.registry import featurizer_from_state_dict

        return featurizer_from_state_dict(merged)

    def check_stage(self, stage: str) -> None:
        """Refuse a stage this fit does not have, naming the ones it has."""
        if stage not in self.stages:
            raise ValueError(
                f"{type(self).__name__}: unknown statistics stage {stage!r}; "
                f"its stages: {list(self.stages)}"
            )

    def fit(self, sites: Sequence[tuple[Any, np.ndarray]]) -> Any:
        """Every stage in one process over ``(data, training ids)`` of each site: the
        featurizer the server would build (tests, benchmarks); only aggregates cross."""
        if not sites:
            raise ValueError(f"{type(self).__name__}.fit needs at least one site")
        payload: Any = None
        for stage in self.stages:
            replies = [self.site_statistics(stage, payload, data, ids) for data, ids in sites]
            payload = self.merge(stage, payload, replies)
        return self.from_statistics(payload)


def require_replies(stage: str, replies: Sequence[Any]) -> None:
    """A stage with no answer cannot be merged: say which."""
    if not replies:
        raise ValueError(f"federated statistics: no site answered the {stage!r} stage")


def column_moments(table: np.ndarray) -> dict[str, list[float]]:
    """Per column of ``table`` (N, F): count, mean and sum of squared deviations (M2) of its
    finite values, the numerically stable form that :func:`merge_moments` pools."""
    x = np.asarray(table, dtype=np.float64)
    seen = np.isfinite(x)
    n = seen.sum(axis=0).astype(np.float64)
    total = np.where(seen, x, 0.0).sum(axis=0)
    mean = np.divide(total, n, out=np.zeros_like(total), where=n > 0)
    m2 = np.where(seen, (x - mean) ** 2, 0.0).sum(axis=0)
    return {"n": n.tolist(), "mean": mean.tolist(), "m2": m2.tolist()}


def merge_moments(parts: Sequence[dict[str, list[float]]]) -> tuple[np.ndarray, ...]:
    """Pooled count, mean and population variance from per-site :func:`column_moments`
    (Chan et al. 1979's parallel update): what one site holding every row would compute."""
    n = np.zeros(len(parts[0]["n"]))
    mean = np.zeros_like(n)
    m2 = np.zeros_like(n)
    for part in parts:
        n_b, mean_b, m2_b = (np.asarray(part[k], dtype=np.float64) for k in ("n", "mean", "m2"))
        total = n + n_b
        safe = np.maximum(total, 1.0)
        delta = mean_b - mean
        mean = np.where(total > 0, mean + delta * n_b / safe, 0.0)
        m2 = m2 + m2_b + delta**2 * n * n_b / safe
        n = total
    var = np.divide(m2, n, out=np.zeros_like(m2), where=n > 0)
    return n, mean, var
