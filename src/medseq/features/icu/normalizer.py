"""Per-variable standardisation, robust to outliers, fitted on training observations only.

For variable ``f`` with training observations ``x``:

1. winsorise: clip to ``[lower_f, upper_f]``, the ``clip_quantiles`` of ``x`` (default the
   0.5th and 99.5th percentiles). ICU charts hold spikes (a Urine output of 8000 mL, a
   heart rate of 0 charted for a disconnected lead) that would otherwise dominate the
   mean and, worse, the standard deviation, squashing every ordinary value towards 0.
   The same bounds are applied at transform time, so a value never lands further out
   than the training data reached.
2. optionally ``log1p`` (``log_variables``): for non-negative, right-skewed variables
   (enzymes, bilirubin, creatinine, lactate, troponins, urine output), which are closer
   to log-normal, so that a doubling counts the same at any level. ``"auto"`` picks the
   variables whose training values are all >= 0 and whose winsorised skewness exceeds
   :data:`AUTO_LOG_SKEW`; on PhysioNet 2012 set A these are ALP, ALT, AST, BUN,
   Bilirubin, Creatinine, Glucose, Lactate, TroponinI, TroponinT and Urine. Values of a
   log variable are clipped at 0 from below.
3. standardise: ``(x - mean_f) / std_f`` with the mean and (population) standard
   deviation of the transformed training values, so the training mean maps to exactly
   0. A variable seen once or always with the same value (PhysioNet's ``MechVent`` is
   always 1) gets ``std_f = 1``; one never seen in training gets mean 0, std 1 and no
   clipping, and is logged.
4. optionally clip the result to ``[-clip_sigma, clip_sigma]``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

STATE_VERSION = 1
AUTO_LOG_SKEW = 2.0
_STATE_KEYS = frozenset(
    {"version", "kind", "params", "names", "lower", "upper", "mean", "std", "log", "n_observed"}
)


class NotFittedError(RuntimeError):
    """A featurisation step was used before ``fit``."""


def check_state(
    state: dict[str, Any], keys: frozenset[str], kind: str, version: int
) -> dict[str, Any]:
    """Refuse a state dict with missing or unknown keys, another kind or another version."""
    if not isinstance(state, dict):
        raise TypeError(f"{kind} state must be a dict, got {type(state).__name__}")
    missing, unknown = sorted(keys - set(state)), sorted(set(state) - keys)
    if missing or unknown:
        raise ValueError(f"{kind} state: missing keys {missing}, unknown keys {unknown}")
    if state["kind"] != kind:
        raise ValueError(f"state is for {state['kind']!r}, not {kind!r}")
    if state["version"] != version:
        raise ValueError(f"{kind} state version {state['version']!r}: expected {version}")
    return state


def check_quantiles(clip_quantiles: Sequence[float] | None) -> tuple[float, float] | None:
    """``None`` or a pair ``0 <= low < high <= 1``, as a tuple of floats."""
    if clip_quantiles is None:
        return None
    pair = tuple(float(q) for q in clip_quantiles)
    if len(pair) != 2 or not 0.0 <= pair[0] < pair[1] <= 1.0:
        raise ValueError(f"clip_quantiles must be (low, high), 0 <= low < high <= 1, got {pair}")
    return pair


def _group_quantile(
    sorted_values: np.ndarray, starts: np.ndarray, counts: np.ndarray, q: float
) -> np.ndarray:
    """Linear-interpolated quantile of each group of a (group, value)-sorted array."""
    pos = q * np.maximum(counts - 1, 0)
    below = np.floor(pos).astype(np.int64)
    above = np.minimum(below + 1, np.maximum(counts - 1, 0))
    frac = pos - below
    safe = np.minimum(starts, max(len(sorted_values) - 1, 0))
    lo = sorted_values[np.minimum(safe + below, len(sorted_values) - 1)]
    hi = sorted_values[np.minimum(safe + above, len(sorted_values) - 1)]
    return np.where(counts > 0, lo + (hi - lo) * frac, np.nan)


def _moments(var: np.ndarray, x: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-group mean, population std and skewness of ``x``."""
    f = len(n)
    denom = np.maximum(n, 1)
    mean = np.bincount(var, weights=x, minlength=f) / denom
    centred = x - mean[var]
    m2 = np.bincount(var, weights=centred**2, minlength=f) / denom
    m3 = np.bincount(var, weights=centred**3, minlength=f) / denom
    std = np.sqrt(m2)
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = np.where(m2 > 0, m3 / np.maximum(m2, 1e-300) ** 1.5, 0.0)
    return mean, std, skew


class Normalizer:
    """Robust per-variable standardisation of the last axis of an array.

    Parameters
    ----------
    clip_quantiles : (float, float) or None, default=(0.005, 0.995)
        Training quantiles that bound each variable (winsorisation); None: no clipping.
    log_variables : "auto", sequence of str or None, default=None
        Variables to ``log1p`` before standardising (see the module doc).
    clip_sigma : float or None, default=None
        Final bound on ``|z|``.

    Attributes
    ----------
    names_ : list of str, length F
    lower_, upper_, mean_, std_ : ndarray of float64, shape (F,)
    log_ : ndarray of bool, shape (F,)
    n_observed_ : ndarray of int64, shape (F,)
    """

    def __init__(
        self,
        *,
        clip_quantiles: Sequence[float] | None = (0.005, 0.995),
        log_variables: str | Sequence[str] | None = None,
        clip_sigma: float | None = None,
    ) -> None:
        self.clip_quantiles = clip_quantiles
        self.log_variables = log_variables
        self.clip_sigma = clip_sigma

    def _check_params(self) -> None:
        check_quantiles(self.clip_quantiles)
        if isinstance(self.log_variables, str) and self.log_variables != "auto":
            raise ValueError(
                f"log_variables must be 'auto', a list of names or None, got {self.log_variables!r}"
            )
        if self.clip_sigma is not None and not float(self.clip_sigma) > 0:
            raise ValueError(f"clip_sigma must be > 0 or None, got {self.clip_sigma!r}")

    def fit(self, var: np.ndarray, value: np.ndarray, names: Sequence[str]) -> Normalizer:
        """Learn the bounds and moments of each variable from training observations.

        Parameters
        ----------
        var : ndarray of int, shape (E,)
            Variable position of each observation, in ``[0, F)``.
        value : ndarray of float, shape (E,)
            Finite observed values.
        names : sequence of str, length F
        """
        self._check_params()
        names = [str(n) for n in names]
        var, value = np.asarray(var, dtype=np.int64), np.asarray(value, dtype=np.float64)
        f = len(names)
        n = np.bincount(var, minlength=f)
        self.names_, self.n_observed_ = names, n
        self.lower_, self.upper_ = self._bounds(var, value, n)
        clipped = np.clip(value, self.lower_[var], self.upper_[var])
        self.log_ = self._choose_log(var, clipped, n)
        self.lower_ = np.where(self.log_, np.maximum(self.lower_, 0.0), self.lower_)
        transformed = np.where(self.log_[var], np.log1p(np.maximum(clipped, 0.0)), clipped)
        mean, std, _ = _moments(var, transformed, n)
        self.mean_ = np.where(n > 0, mean, 0.0)
        self.std_ = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
        unseen = [names[k] for k in np.flatnonzero(n == 0)]
        if unseen:
            logger.warning("no training observations of %s: mean 0, std 1, no clipping", unseen)
        return self

    def _bounds(
        self, var: np.ndarray, value: np.ndarray, n: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        f = len(n)
        if self.clip_quantiles is None or len(value) == 0:
            return np.full(f, -np.inf), np.full(f, np.inf)
        order = np.lexsort((value, var))
        ordered = value[order]
        starts = np.cumsum(n) - n
        q_low, q_high = self.clip_quantiles
        low = _group_quantile(ordered, starts, n, float(q_low))
        high = _group_quantile(ordered, starts, n, float(q_high))
        return np.where(n > 0, low, -np.inf), np.where(n > 0, high, np.inf)

    def _choose_log(self, var: np.ndarray, clipped: np.ndarray, n: np.ndarray) -> np.ndarray:
        f = len(n)
        if self.log_variables is None:
            return np.zeros(f, dtype=bool)
        minimum = np.full(f, np.inf)
        np.minimum.at(minimum, var, clipped)
        if isinstance(self.log_variables, str):  # "auto", checked in fit
            _, _, skew = _moments(var, clipped, n)
            return (n > 1) & (minimum >= 0) & (skew > AUTO_LOG_SKEW)
        chosen = np.isin(self.names_, list(self.log_variables))
        unknown = sorted(set(self.log_variables) - set(self.names_))
        if unknown:
            raise ValueError(f"log_variables {unknown} are not variables; known: {self.names_}")
        negative = [self.names_[k] for k in np.flatnonzero(chosen & (minimum < 0))]
        if negative:
            raise ValueError(f"log_variables {negative} have negative training values")
        return chosen

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Normalise ``x`` of shape (..., F) along its last axis; NaN stays NaN.

        Returns
        -------
        ndarray of float64, same shape as ``x``
        """
        if not hasattr(self, "mean_"):
            raise NotFittedError("this Normalizer is not fitted yet: call fit first")
        out = np.clip(np.asarray(x, dtype=np.float64), self.lower_, self.upper_)
        logged = np.flatnonzero(self.log_)
        if logged.size:
            out[..., logged] = np.log1p(out[..., logged])
        out = (out - self.mean_) / self.std_
        if self.clip_sigma is not None:
            out = np.clip(out, -float(self.clip_sigma), float(self.clip_sigma))
        return out

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON-able state; infinite bounds (no clipping) are stored as None."""
        if not hasattr(self, "mean_"):
            raise NotFittedError("this Normalizer is not fitted yet: call fit first")
        log_variables = self.log_variables
        if log_variables is not None and not isinstance(log_variables, str):
            log_variables = [str(v) for v in log_variables]
        quantiles = None if self.clip_quantiles is None else list(self.clip_quantiles)
        return {
            "version": STATE_VERSION,
            "kind": "Normalizer",
            "params": {
                "clip_quantiles": quantiles,
                "log_variables": log_variables,
                "clip_sigma": None if self.clip_sigma is None else float(self.clip_sigma),
            },
            "names": list(self.names_),
            "lower": [float(v) if np.isfinite(v) else None for v in self.lower_],
            "upper": [float(v) if np.isfinite(v) else None for v in self.upper_],
            "mean": self.mean_.tolist(),
            "std": self.std_.tolist(),
            "log": self.log_.tolist(),
            "n_observed": self.n_observed_.tolist(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Normalizer:
        """Rebuild a fitted normalizer from :meth:`state_dict` (keys and version checked)."""
        check_state(state, _STATE_KEYS, "Normalizer", STATE_VERSION)
        params = state["params"]
        unknown = sorted(set(params) - {"clip_quantiles", "log_variables", "clip_sigma"})
        if unknown:
            raise ValueError(f"Normalizer state: unknown params {unknown}")
        self = cls(**params)
        self._check_params()
        f = len(state["names"])
        for key in ("lower", "upper", "mean", "std", "log", "n_observed"):
            if len(state[key]) != f:
                raise ValueError(f"Normalizer state: {key} has {len(state[key])} entries, not {f}")
        self.names_ = [str(n) for n in state["names"]]
        self.lower_ = np.array([-np.inf if v is None else v for v in state["lower"]], float)
        self.upper_ = np.array([np.inf if v is None else v for v in state["upper"]], float)
        self.mean_ = np.array(state["mean"], dtype=np.float64)
        self.std_ = np.array(state["std"], dtype=np.float64)
        self.log_ = np.array(state["log"], dtype=bool)
        self.n_observed_ = np.array(state["n_observed"], dtype=np.int64)
        return self
