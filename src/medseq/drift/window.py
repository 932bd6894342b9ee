"""The same profile as the bundle's reference, over a sliding window of served samples.

:class:`DriftWindow` keeps, for the last ``window`` samples served, only each sample's bin
per feature (a small integer) and its counts of observed and out-of-range cells: no value,
no identifier. Running bin counts are updated as samples enter and leave, so one
observation costs O(features), and the drift statistics (:mod:`.stats`) read the counts.

A feature **drifts** when its population stability index reaches ``psi`` *and* the
chi-square test rejects "same distribution" at ``alpha`` divided by the number of tests
(Bonferroni over features and prediction outputs): the first is the size of the shift, the
second that it is not the noise of a small window. A feature also drifts when its share of
out-of-range cells exceeds the reference share by ``out_of_range`` (a unit error or a new
device puts most values at the edge), when it is observed in at least a quarter of the
window (a rare lab charted in a handful of stays is a handful of patients). The service's
flag is on while any feature or prediction output drifts, once the window holds
``min_samples``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from medseq.drift.profile import bin_index, out_of_range, parts_of, prediction_columns
from medseq.drift.profile import summarise as summarise_arrays
from medseq.drift.stats import chi2_homogeneity, psi

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriftSettings:
    """Window and thresholds of the drift monitor (``medseq serve --drift-window``...).

    The defaults were chosen on PhysioNet 2012 set A alone (each CV fold replayed against a
    reference of the other folds; the rule and grid in ``benchmarks/drift_replay.py``), then
    applied unchanged to set B and to shifted streams (``benchmarks/results/uncertainty.md``).
    The flag is re-tested as the window slides, so the level per check is kept small.

    Parameters
    ----------
    window : int, default=100
        Served samples (patients, records) the sliding window holds.
    min_samples : int, default=50
        No drift is reported before the window holds this many samples.
    psi : float, default=0.25
        Population stability index at which a feature may drift (> 0.25: major shift).
    alpha : float, default=1e-5
        Family-wise level of the chi-square tests (divided by the number of tests).
    out_of_range : float, default=0.25
        Excess share of out-of-range cells over the reference share that is drift; only
        for features observed in at least a quarter of the window (and ``min_samples // 2``).
    check_every : int, default=10
        The flag is re-evaluated once this many samples arrived since the last check (the
        statistics cost more than adding a sample); ``GET /v1/drift`` always computes them.
    """

    window: int = 100
    min_samples: int = 50
    psi: float = 0.25
    alpha: float = 1e-5
    out_of_range: float = 0.25
    check_every: int = 10

    def min_observed(self, n_samples: int) -> int:
        """Samples a feature must be observed in for its out-of-range share to count."""
        return max(self.min_samples // 2, n_samples // 4)

    def __post_init__(self) -> None:
        if self.window < 10:
            raise ValueError(f"drift window must hold >= 10 samples, got {self.window}")
        if not 1 <= self.min_samples <= self.window:
            raise ValueError(
                f"drift min_samples must be in [1, window={self.window}], got {self.min_samples}"
            )
        if self.check_every < 1:
            raise ValueError(f"drift check_every must be >= 1, got {self.check_every}")
        if self.psi <= 0 or not 0 < self.alpha < 1 or not 0 < self.out_of_range <= 1:
            raise ValueError(
                "drift thresholds: psi > 0, alpha in (0, 1), out_of_range in (0, 1]; got "
                f"psi={self.psi}, alpha={self.alpha}, out_of_range={self.out_of_range}"
            )


class _Binned:
    """Edges, reference counts and the window's running counts of some features."""

    def __init__(self, features: list[dict[str, Any]], n_bins: int, window: int) -> None:
        self.names = [f["name"] for f in features]
        self.edges = np.full((len(features), n_bins - 1), np.inf)
        for j, f in enumerate(features):
            self.edges[j, : len(f["edges"])] = f["edges"]
        counts = [f["counts"] for f in features]  # none: per-step outputs, not profiled
        self.reference = np.array(counts, dtype=np.float64).reshape(len(features), n_bins + 1)
        self.ref_missing = np.array([f["missing"] for f in features])
        self.counts = np.zeros((len(features), n_bins + 1), dtype=np.int64)
        self.ring = np.zeros((window, len(features)), dtype=np.int16)
        self._cols = np.arange(len(features))

    def bins(self, x: np.ndarray) -> np.ndarray:
        return bin_index(x, self.edges).astype(np.int16)

    def replace(self, slots: np.ndarray, old: bool, new_bins: np.ndarray) -> None:
        cols = np.broadcast_to(self._cols, new_bins.shape)
        if old:
            np.add.at(self.counts, (cols, self.ring[slots]), -1)
        self.ring[slots] = new_bins
        np.add.at(self.counts, (cols, new_bins), 1)

    def stats(self, psi_min: float, alpha: float) -> dict[str, np.ndarray]:
        """PSI of every feature; the chi-square p-value where the PSI reaches ``psi_min``."""
        values = psi(self.counts, self.reference)
        p = np.ones(len(values))
        for j in np.flatnonzero(values >= psi_min):
            p[j] = chi2_homogeneity(self.counts[j], self.reference[j])[2]
        return {"psi": values, "p_value": p, "drifting": (values >= psi_min) & (p < alpha)}


class DriftWindow:
    """Sliding-window profile of served samples against a bundle's reference profile.

    Parameters
    ----------
    profile : dict
        ``bundle.drift_profile`` (:func:`medseq.drift.profile.build_profile`).
    description : FeaturizerDescription
        The serving featurizer's ``describe()``; must match the profiled arrays.
    settings : DriftSettings
    task : str
        The bundle's task (how predictions are profiled).
    class_names : list of str, optional
    """

    def __init__(
        self,
        profile: Mapping[str, Any],
        description: Any,
        settings: DriftSettings,
        task: str = "binary",
        class_names: list[str] | None = None,
    ) -> None:
        self.settings, self.task, self.class_names = settings, task, class_names
        self.parts = parts_of(profile, description)
        feats, n_bins, size = profile["features"], int(profile["n_bins"]), settings.window
        self.inputs = _Binned(feats, n_bins, size)
        self.preds = _Binned(profile.get("predictions", []), n_bins, size)
        self.lo = np.array([f["lo"] for f in feats], dtype=np.float64)
        self.hi = np.array([f["hi"] for f in feats], dtype=np.float64)
        self.ref_out = np.array([f["out_of_range"] for f in feats])
        self.beyond = np.zeros((size, len(feats)), dtype=np.int32)
        self.observed = np.zeros((size, len(feats)), dtype=np.int32)
        self.beyond_sum = np.zeros(len(feats), dtype=np.int64)
        self.observed_sum = np.zeros(len(feats), dtype=np.int64)
        self.reference_n = int(profile["n_samples"])
        self.n_seen = 0  # samples ever observed; the window holds min(n_seen, window)
        self._checked = -settings.check_every  # n_seen at the last check
        self.flag = False
        self.alarms = 0
        self._lock = threading.Lock()

    @property
    def n_samples(self) -> int:
        return min(self.n_seen, self.settings.window)

    def observe(self, arrays: Mapping[str, np.ndarray], predictions: np.ndarray) -> None:
        """Add the samples of one request (its ``transform`` arrays and predictions)."""
        summary = summarise_arrays(self.parts, arrays)
        in_bins = self.inputs.bins(summary["x"])
        beyond, observed = out_of_range(summary["cells"], self.lo, self.hi)
        cols = prediction_columns(predictions, self.task, self.class_names)
        pred_bins = None
        if cols is not None and len(self.preds.names) == cols[0].shape[1]:
            pred_bins = self.preds.bins(cols[0])
        keep = slice(-self.settings.window, None)  # a request larger than the window
        part = None if pred_bins is None else pred_bins[keep]
        with self._lock:
            self._add(in_bins[keep], beyond[keep], observed[keep], part)
            self._check()

    def _add(self, in_bins, beyond, observed, pred_bins) -> None:
        size = self.settings.window
        k = len(in_bins)
        slots = (self.n_seen + np.arange(k)) % size
        old = self.n_seen >= size
        if not old and self.n_seen + k > size:  # wraps over filled slots: add one by one
            for i in range(k):
                part = None if pred_bins is None else pred_bins[i : i + 1]
                self._add(in_bins[i : i + 1], beyond[i : i + 1], observed[i : i + 1], part)
            return
        self.inputs.replace(slots, old, in_bins)
        if pred_bins is not None:
            self.preds.replace(slots, old, pred_bins)
        if old:
            self.beyond_sum -= self.beyond[slots].sum(axis=0)
            self.observed_sum -= self.observed[slots].sum(axis=0)
        self.beyond[slots], self.observed[slots] = beyond, observed
        self.beyond_sum += beyond.sum(axis=0)
        self.observed_sum += observed.sum(axis=0)
        self.n_seen += k

    def _evaluate(self) -> dict[str, Any]:
        s = self.settings
        n_tests = max(len(self.inputs.names) + len(self.preds.names), 1)
        inputs = self.inputs.stats(s.psi, s.alpha / n_tests)
        preds = self.preds.stats(s.psi, s.alpha / n_tests)
        beyond, observed = self.beyond_sum, self.observed_sum
        out_share = beyond / np.maximum(observed, 1)
        # only features observed in enough samples: a rare lab seen in 5 stays, one of them
        # with every value clipped, is one patient, not a change of population
        seen = self.settings.min_observed(self.n_samples) <= self._observed_samples()
        excess = np.where(seen & (observed > 0), out_share - self.ref_out, 0.0)
        inputs["out_of_range"] = out_share
        inputs["drifting"] = inputs["drifting"] | (excess >= s.out_of_range)
        total = max(int(observed.sum()), 1)
        overall = {
            "window": float(beyond.sum() / total),
            "reference": float((self.ref_out * observed).sum() / total),
        }
        return {"inputs": inputs, "predictions": preds, "out_of_range": overall}

    def _observed_samples(self) -> np.ndarray:
        """Samples of the window in which each feature was observed (not missing)."""
        return self.n_samples - self.inputs.counts[:, -1]

    def _check(self) -> None:
        """Set or clear the flag; log a warning when it turns on (feature names only)."""
        due = self.n_seen - self._checked >= self.settings.check_every
        if self.n_samples < self.settings.min_samples or not due:
            return
        self._checked = self.n_seen
        ev = self._evaluate()
        names = [self.inputs.names[j] for j in np.flatnonzero(ev["inputs"]["drifting"])]
        outs = [self.preds.names[j] for j in np.flatnonzero(ev["predictions"]["drifting"])]
        flag = bool(names or outs)
        if flag and not self.flag:
            self.alarms += 1
            logger.warning(
                "drift: %d of %d input features and %d of %d prediction outputs drift over "
                "the last %d served samples: %s (see GET /v1/drift)",
                len(names), len(self.inputs.names), len(outs), len(self.preds.names),
                self.n_samples, ", ".join(names + outs),
            )  # fmt: skip
        elif self.flag and not flag:
            logger.info("drift: no feature drifts any more over the last %d", self.n_samples)
        self.flag = flag

    def report(self) -> dict[str, Any]:
        """Plain JSON: the flag, the window, and per-feature and prediction drift."""
        with self._lock:
            ev = self._evaluate()
            n = self.n_samples
            in_counts = self.inputs.counts.copy()
            flag, alarms = self.flag, self.alarms
        s = self.settings
        evaluated = n >= s.min_samples
        inputs, preds = ev["inputs"], ev["predictions"]
        features = []
        for j, name in enumerate(self.inputs.names):
            features.append({
                "name": name,
                "psi": _r(inputs["psi"][j]),
                "p_value": _r(inputs["p_value"][j]),
                "missing": {"window": _r(in_counts[j, -1] / max(n, 1)),
                            "reference": _r(self.inputs.ref_missing[j])},
                "out_of_range": {"window": _r(inputs["out_of_range"][j]),
                                 "reference": _r(self.ref_out[j])},
                "drifting": bool(evaluated and inputs["drifting"][j]),
            })  # fmt: skip
        outputs = [
            {"name": name, "psi": _r(preds["psi"][j]), "p_value": _r(preds["p_value"][j]),
             "drifting": bool(evaluated and preds["drifting"][j])}
            for j, name in enumerate(self.preds.names)
        ]  # fmt: skip
        ranked = sorted((f for f in features if f["drifting"]), key=lambda f: -f["psi"])
        return {
            "enabled": True,
            "drift": flag,
            "alarms": alarms,
            "window": {"size": s.window, "n_samples": n, "min_samples": s.min_samples,
                       "evaluated": evaluated, "n_seen": self.n_seen},
            "thresholds": {"psi": s.psi, "alpha": s.alpha, "out_of_range": s.out_of_range},
            "reference_n_samples": self.reference_n,
            "drifting_features": [f["name"] for f in ranked],
            "prediction_drift": any(o["drifting"] for o in outputs),
            "out_of_range": {k: _r(v) for k, v in ev["out_of_range"].items()},
            "features": features,
            "predictions": outputs,
        }  # fmt: skip


def _r(value: float) -> float:
    return round(float(value), 6)
