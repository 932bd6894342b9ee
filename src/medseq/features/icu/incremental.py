"""The fitted :class:`~medseq.features.icu.featurizer.ICUFeaturizer` in incremental form,
one patient and one bin at a time.

Principle 1 of the design: the streaming engine must give the numbers of
``Bundle.predict`` over the same history. This module therefore re-states, for a single
subject and a single bin, exactly what :class:`~medseq.features.icu.featurizer.ICUFeaturizer`
computes over a whole grid, from the same fitted state (no second fit, no second set of
statistics):

* bins: ``floor(time / step_hours + 1e-9)``, the window's right edge in the last bin
  (:func:`medseq.features.icu.discretizer.bin_of`); events before 0 or after the window are
  left out and reported.
* aggregation in a bin: the latest observation (ties by the larger value) or the mean.
* normalisation: the fitted :class:`~medseq.features.icu.normalizer.Normalizer` arrays.
* imputation: last normalised observation carried forward (0, the training mean, before
  the first), or 0 for ``"mean"`` / ``"zero"``.
* δ: hours since the variable's last observed bin before this one, scaled per
  ``delta_scale``.
* summary fusion (``static_summary``): running mean/min/max/last/count of the normalised
  bin values, so :func:`~medseq.features.icu.summary.grid_summary` needs no history.

The per-patient part lives in :class:`FeatureState`: what was observed in the bins that
are closed (``last_z``, ``last_bin``, the running statistics) and the raw aggregation of
the one open bin, which a later observation in the same hour may still change.

It lives with the featurizer it mirrors, not in ``serving/``: the streaming service never
names a featurizer; it asks the bundle's dataset spec, whose ``streaming`` part builds a
:class:`StreamFeaturizer` (``stream_features(featurizer)``, e.g.
:func:`medseq.datasets.physionet2012_serving.stream_features`). Every dataset whose
features are an ICU grid (PhysioNet 2012, the flat-table ``flat_icu``, the inner grid of
PhysioNet 2019's hourly featurizer) streams through this one class.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from medseq.features.icu.featurizer import ICUFeaturizer

logger = logging.getLogger(__name__)


class _Row:
    """Row ``i`` of :attr:`FeatureState.block` as a named (F,) array (a view: in-place
    writes reach the block; assigning an array copies it into the row)."""

    def __init__(self, i: int) -> None:
        self.i = i

    def __get__(self, state: FeatureState, owner: type | None = None) -> np.ndarray:
        return state.block[self.i]

    def __set__(self, state: FeatureState, value: np.ndarray) -> None:
        state.block[self.i] = value


class FeatureState:
    """What the featurizer must remember of one patient; every array has shape (F,).

    The eight arrays are the rows of one float64 ``block`` (8, F), and the class has
    ``__slots__``: the service caches up to ``max_cached_patients`` states, and eight
    arrays cost eight numpy headers (about 100 bytes each) beside 8 F floats.

    Attributes
    ----------
    open_bin : int
        The latest bin holding an observation (0 before any); ``lengths = open_bin + 1``.
    last_z, last_bin : float64
        Normalised value and bin of each variable's latest observation in a closed bin
        (``last_bin = -1`` before the first; whole numbers, exact in float64, and stored
        as int64).
    sum_z, count, min_z, max_z : float64
        Running statistics of the closed bins' normalised values (summary fusion).
    cur_time, cur_value : float64
        ``aggregate="last"``: the open bin's latest observation per variable (NaN: none).
        ``aggregate="mean"``: ``cur_value`` is the sum and ``cur_time`` the count.
    static_raw : dict
        Descriptors as given (``Age``, ``Gender``, ...); missing ones are NaN.
    cache : dict
        Values derived from the closed bins (fill, δ of the open bin, closed statistics),
        recomputed when a bin closes; never persisted.
    """

    __slots__ = ("block", "cache", "open_bin", "static_raw")

    ARRAYS = ("last_z", "last_bin", "sum_z", "count", "min_z", "max_z", "cur_time", "cur_value")
    #: dtype of each array in the store (``last_bin`` is int64 there, as before the block)
    STORED_DTYPES: ClassVar[dict[str, type]] = {
        name: np.int64 if name == "last_bin" else np.float64 for name in ARRAYS
    }

    last_z = _Row(0)
    last_bin = _Row(1)
    sum_z = _Row(2)
    count = _Row(3)
    min_z = _Row(4)
    max_z = _Row(5)
    cur_time = _Row(6)
    cur_value = _Row(7)

    def __init__(
        self,
        open_bin: int,
        static_raw: dict[str, float],
        cache: dict[str, np.ndarray] | None = None,
        **arrays: np.ndarray,
    ) -> None:
        missing = sorted(set(self.ARRAYS) - set(arrays))
        extra = sorted(set(arrays) - set(self.ARRAYS))
        if missing or extra:
            raise TypeError(f"FeatureState needs the arrays {self.ARRAYS}; missing "
                            f"{missing}, unknown {extra}")  # fmt: skip
        self.open_bin = open_bin
        self.static_raw = static_raw
        self.cache = {} if cache is None else cache
        self.block = np.empty((len(self.ARRAYS), np.shape(arrays["last_z"])[0]))
        for i, name in enumerate(self.ARRAYS):
            self.block[i] = arrays[name]

    @classmethod
    def from_block(
        cls, open_bin: int, static_raw: dict[str, float], block: np.ndarray
    ) -> FeatureState:
        """A state around an existing (8, F) float64 ``block`` (taken, not copied), as the
        compact cache of the streaming service rehydrates one."""
        if block.dtype != np.float64 or block.ndim != 2 or block.shape[0] != len(cls.ARRAYS):
            raise ValueError(f"FeatureState block must be float64 of shape ({len(cls.ARRAYS)}"
                             f", F), got {block.dtype} {block.shape}")  # fmt: skip
        state = cls.__new__(cls)
        state.open_bin = open_bin
        state.static_raw = static_raw
        state.cache = {}
        state.block = block
        return state

    def __repr__(self) -> str:
        return f"FeatureState(open_bin={self.open_bin}, n_features={self.block.shape[1]})"


@dataclass(frozen=True)
class BinFeatures:
    """The model inputs of one bin, float32 values widened to float64, each (F,)."""

    values: np.ndarray
    mask: np.ndarray
    delta: np.ndarray
    z: np.ndarray  # normalised observation, NaN where unobserved (float64, for summaries)


class StreamFeaturizer:
    """Per-bundle constants and the incremental transform; see the module doc.

    Parameters
    ----------
    featurizer : ICUFeaturizer
        Fitted (the one in the bundle).
    """

    def __init__(self, featurizer: ICUFeaturizer) -> None:
        featurizer._check_fitted()
        params = featurizer._params()
        self.featurizer = featurizer
        self.variables: list[str] = featurizer.feature_names_
        self.index = {name: j for j, name in enumerate(self.variables)}
        self.n_features = len(self.variables)
        self.step_hours = float(params["step_hours"])
        self.n_steps = int(params["n_steps"])
        self.window_hours = self.n_steps * self.step_hours
        self.aggregate = params["aggregate"]
        self.impute = params["impute"]
        self.delta_scale = params["delta_scale"]
        self.static_summary = bool(params["static_summary"])
        self.static_columns = list(featurizer.static_encoder_.columns)
        norm = featurizer.normalizer_
        self._lower, self._upper = norm.lower_, norm.upper_
        self._logged = np.flatnonzero(norm.log_)
        self._mean, self._std = norm.mean_, norm.std_
        self._clip_sigma = None if norm.clip_sigma is None else float(norm.clip_sigma)

    def new_state(self) -> FeatureState:
        """A patient with nothing observed yet (one open, empty bin 0)."""
        f = self.n_features
        nan = np.full(f, np.nan)
        return FeatureState(
            open_bin=0,
            last_z=np.zeros(f),
            last_bin=np.full(f, -1, dtype=np.int64),
            sum_z=np.zeros(f),
            count=np.zeros(f),
            min_z=np.full(f, np.inf),
            max_z=np.full(f, -np.inf),
            cur_time=nan.copy() if self.aggregate == "last" else np.zeros(f),
            cur_value=nan.copy() if self.aggregate == "last" else np.zeros(f),
            static_raw={c: math.nan for c in self.static_columns},
        )

    def bin_of(self, time_hours: float) -> int:
        """``floor(time / step + 1e-9)`` capped at the last bin (as the batch discretizer)."""
        # math.floor of the same float64 sum: np.floor's value without a numpy scalar's cost
        return min(math.floor(time_hours / self.step_hours + 1e-9), self.n_steps - 1)

    def in_window(self, time_hours: float) -> str | None:
        """None if the batch featurizer would keep an event at this time, else the reason."""
        if time_hours < 0:
            return "before_window"
        if time_hours > self.window_hours:
            return "after_window"
        return None

    def add(self, state: FeatureState, j: int, time_hours: float, value: float) -> None:
        """Fold one observation of variable ``j`` into the open bin's aggregation."""
        if self.aggregate == "mean":
            state.cur_value[j] += value
            state.cur_time[j] += 1.0
            return
        t, v = state.cur_time[j], state.cur_value[j]
        # t != t: NaN, no observation of j in the open bin yet (np.isnan costs more on a scalar)
        if t != t or time_hours > t or (time_hours == t and value > v):
            state.cur_time[j], state.cur_value[j] = time_hours, value

    def _raw_open_bin(self, state: FeatureState) -> np.ndarray:
        if self.aggregate == "mean":
            n = state.cur_time
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(n > 0, state.cur_value / np.where(n > 0, n, 1.0), np.nan)
        return state.cur_value

    def normalize(self, raw: np.ndarray) -> np.ndarray:
        """The fitted Normalizer's transform of one (F,) vector; NaN stays NaN."""
        # np.minimum(np.maximum(.)) is what np.clip computes for floats (NaN kept), without
        # its Python wrappers: this runs on every streaming update
        out = np.minimum(np.maximum(raw, self._lower), self._upper)
        if self._logged.size:
            out[self._logged] = np.log1p(out[self._logged])
        out -= self._mean
        out /= self._std
        if self._clip_sigma is not None:
            np.minimum(np.maximum(out, -self._clip_sigma, out=out), self._clip_sigma, out=out)
        return out

    def _constants(self, state: FeatureState, t: int) -> dict[str, np.ndarray]:
        """Fill values, δ of bin ``t`` and closed-bin statistics, cached until a bin closes."""
        cache = state.cache
        if cache.get("t") is not None and cache["t"][0] == t:
            return cache
        seen = state.last_bin >= 0
        if self.impute == "forward":
            fill = np.where(seen, state.last_z, 0.0)
        else:
            fill = np.zeros(self.n_features)
        hours = ((t - np.maximum(state.last_bin, 0)) * self.step_hours).astype(np.float64)
        count = state.count
        closed = np.stack(
            [
                np.where(seen, state.sum_z / np.maximum(count, 1), 0.0),
                np.where(seen, state.min_z, 0.0),
                np.where(seen, state.max_z, 0.0),
                np.where(seen, state.last_z, 0.0),
                np.log1p(count),
            ],
            axis=1,
        )
        cache.clear()
        cache.update(
            t=np.array([t]),
            fill32=fill.astype(np.float32).astype(np.float64),
            delta=self._scale_delta(hours).astype(np.float32).astype(np.float64),
            closed=closed,
        )
        return cache

    def bin_features(self, state: FeatureState, t: int, z: np.ndarray | None) -> BinFeatures:
        """Inputs of bin ``t`` given the closed bins in ``state`` and its values ``z``.

        ``z`` is None for a bin without observations (a gap before a later one).
        """
        const = self._constants(state, t)
        if z is None:
            z = np.full(self.n_features, np.nan)
        observed = z == z  # not NaN
        z32 = z.astype(np.float32).astype(np.float64)
        return BinFeatures(
            values=np.where(observed, z32, const["fill32"]),
            mask=observed.astype(np.float64),
            delta=const["delta"],
            z=z,
        )

    def open_bin_features(self, state: FeatureState) -> BinFeatures:
        """Inputs of the open bin, from its current aggregation."""
        return self.bin_features(state, state.open_bin, self.normalize(self._raw_open_bin(state)))

    def _scale_delta(self, hours: np.ndarray) -> np.ndarray:
        if self.delta_scale == "horizon":
            return hours / self.window_hours
        if self.delta_scale == "log1p":
            return np.log1p(hours)
        return hours

    def close_bin(self, state: FeatureState, t: int, z: np.ndarray | None) -> None:
        """Fold bin ``t`` (values ``z``, None: empty) into the closed-bin statistics."""
        if z is not None:
            observed = ~np.isnan(z)
            if observed.any():
                zz = np.where(observed, z, 0.0)
                state.last_z = np.where(observed, z, state.last_z)
                state.last_bin = np.where(observed, t, state.last_bin)
                state.sum_z = state.sum_z + zz
                state.count = state.count + observed
                state.min_z = np.where(observed, np.minimum(state.min_z, zz), state.min_z)
                state.max_z = np.where(observed, np.maximum(state.max_z, zz), state.max_z)
        state.cache.clear()
        if self.aggregate == "last":
            state.cur_time = np.full(self.n_features, np.nan)
            state.cur_value = np.full(self.n_features, np.nan)
        else:
            state.cur_time = np.zeros(self.n_features)
            state.cur_value = np.zeros(self.n_features)

    def summary(self, state: FeatureState, z_open: np.ndarray) -> np.ndarray:
        """:func:`~medseq.features.icu.summary.grid_summary` of closed bins plus the open one.

        Only the variables observed in the open bin differ from the cached closed-bin
        statistics, so only their rows are recomputed.

        Returns
        -------
        ndarray of float32, shape (5 F,), variable-major (mean, min, max, last, log count)
        """
        const = self._constants(state, state.open_bin)
        closed = const["closed"]
        idx = np.nonzero(z_open == z_open)[0]  # the observed variables (z is NaN elsewhere)
        if idx.size == 0:
            return closed.reshape(-1).astype(np.float32)
        z = z_open[idx]
        count = state.count[idx] + 1.0
        rows = np.empty((idx.size, 5))  # the columns written in place: no np.stack per update
        np.add(state.sum_z[idx], z, out=rows[:, 0])
        rows[:, 0] /= count
        np.minimum(state.min_z[idx], z, out=rows[:, 1])
        np.maximum(state.max_z[idx], z, out=rows[:, 2])
        rows[:, 3] = z
        np.log1p(count, out=rows[:, 4])
        out = closed.astype(np.float32)
        out[idx] = rows  # float64 -> float32 as astype rounds
        return out.reshape(-1)

    def encode_static(self, static_raw: Mapping[str, float]) -> np.ndarray:
        """The bundled StaticEncoder applied to one patient's descriptors, shape (S0,)."""
        row = pd.DataFrame(
            {c: [float(static_raw.get(c, math.nan))] for c in self.static_columns},
            index=pd.Index([0], name="subject_id"),
        )
        return self.featurizer.static_encoder_.transform(row, np.array([0], dtype=np.int64))[0]
