"""``ICUFeaturizer``: ICU events and descriptors -> the tensors every medseq model takes.

It composes :class:`~medseq.features.icu.discretizer.Discretizer` (grid, mask, δ),
:class:`~medseq.features.icu.normalizer.Normalizer` (per-variable robust standardisation) and
:class:`~medseq.features.icu.static.StaticEncoder`, all fitted on the training subjects only,
and its whole fitted state is plain JSON (``state_dict``), so the one pipeline travels in
the bundle and training, batch prediction and serving call the same transform.

Output layout (``docs/architecture.md`` §3), for N subjects, T bins and F variables:

* ``values`` (N, T, F) float32: normalised; unobserved bins imputed per ``impute``.
* ``mask`` (N, T, F) float32: 1 where the variable was observed in the bin.
* ``delta`` (N, T, F) float32: time since the variable was last observed before the bin
  (GRU-D's δ, see :func:`~medseq.features.icu.discretizer.time_since_observed`), 0 at t = 0,
  scaled per ``delta_scale``.
* ``lengths`` (N,) int64: bins up to and including the last bin with any observation, at
  least 1 (a subject with no usable event gets one all-unobserved bin).
* ``static`` (N, S) float32.

Padding: bins ``t >= lengths`` hold ``values = 0``, ``mask = 0``, ``delta = 0``, the same
zeros the models themselves write there, so padding can never leak into a prediction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from medseq.features.base import ArraySpec, FeaturizerDescription
from medseq.features.icu.discretizer import (
    Discretizer,
    as_subject_ids,
    event_arrays,
    forward_fill,
    index_events,
    padding_mask,
)
from medseq.features.icu.normalizer import Normalizer, NotFittedError, check_quantiles, check_state
from medseq.features.icu.static import StaticEncoder
from medseq.features.icu.summary import GRID_STATISTICS, grid_summary
from medseq.schema import ReadReport
from medseq.sources.physionet2012 import DESCRIPTORS

logger = logging.getLogger(__name__)

STATE_VERSION = 1
IMPUTES: tuple[str, ...] = ("forward", "mean", "zero")
DELTA_SCALES: tuple[str, ...] = ("hours", "horizon", "log1p")
_STATE_KEYS = frozenset({"version", "kind", "params", "variables", "normalizer", "static"})


class ICUFeaturizer:
    """Fit on training subjects, then turn events + descriptors into model tensors.

    Parameters
    ----------
    step_hours : float, default=1.0
        Bin width.
    n_steps : int, default=48
        ``T``; the window is ``[0, n_steps * step_hours]`` hours, its right edge in the last
        bin. Events outside are left out and counted.
    impute : {"forward", "mean", "zero"}, default="forward"
        Value of unobserved bins. ``"forward"``: last observation carried forward, the
        training mean (0 after normalisation) before the first one; what a clinician
        assumes of a chart. ``"mean"``: the training mean. ``"zero"``: 0, the
        zero-filling-with-mask baseline of Lipton et al. (2016, MLHC); because values
        are standardised on the training mean this is the same array as ``"mean"``.
        (A raw 0 in clinical units was rejected: for levels it lands far out, a pH of 0
        would be about -90 standard deviations.)
    variables : sequence of str or None, default=None
        The ``F`` codes, in output order. None: every code with a value among the
        training subjects' events, sorted. Other codes are left out and counted.
    static_columns : sequence of str, default=DESCRIPTORS
        Columns of the static table, encoded by :class:`StaticEncoder`.
    clip_sigma : float or None, default=None
        Optional bound on ``|values|`` after normalisation; robustness already comes from
        ``clip_quantiles``.
    clip_quantiles : (float, float) or None, default=(0.005, 0.995)
        Per-variable winsorisation learned on the training observations, applied before
        mean/std are computed and at transform time (see :mod:`.normalizer`).
    log_variables : "auto", sequence of str or None, default=None
        Variables to ``log1p`` before standardising; ``"auto"`` picks non-negative,
        right-skewed ones on the training data. Off by default so values stay linear in
        clinical units; ``"auto"`` is worth trying for the laboratory variables.
    aggregate : {"last", "mean"}, default="last"
        Several observations of a variable in one bin: the latest, or their mean.
    delta_scale : {"hours", "horizon", "log1p"}, default="hours"
        δ in hours (GRU-D's definition, what ``models.GRUD`` expects and what its decay
        initialisation is sized for), divided by ``n_steps * step_hours`` (in [0, 1], for
        plain RNNs fed δ as an input), or ``log1p(hours)``.
    static_summary : bool, default=False
        Append per-variable statistics of the window's observations (mean, min, max,
        last, log count; :func:`~medseq.features.icu.summary.grid_summary`) to ``static``.
        This "summary fusion" gives the model the same view a gradient-boosted tree on
        summaries has, beside the recurrent read of the trajectory; on PhysioNet 2012 it
        raised validation AUROC of a GRU from 0.856 to 0.869 (see README).

    Attributes
    ----------
    feature_names_ : list of str
        The ``F`` variables, in the order of the last axis of ``values``.
    static_names_ : list of str
        The ``S`` static columns (e.g. ``Age, Age_missing, ..., ICUType=1, ...``).
    fit_report_, last_transform_report_ : medseq.schema.ReadReport
        Events left out or aggregated by ``fit`` / the latest ``transform``, by reason:
        ``not_requested_subject``, ``unknown_code:<code>``, ``missing_code``,
        ``nan_value``, ``before_window``, ``after_window``, ``aggregated_in_bin``,
        ``subjects_without_events``, ``static_missing:<col>``, ``static_unexpected:<col>``.

    Examples
    --------
    >>> import pandas as pd
    >>> events = pd.DataFrame({"subject_id": [1, 1, 2], "time": [0.0, 2.5, 1.0],
    ...                        "code": ["HR", "HR", "HR"], "value": [80.0, 100.0, 90.0]})
    >>> static = pd.DataFrame({"Age": [70.0, 50.0]}, index=pd.Index([1, 2], name="subject_id"))
    >>> f = ICUFeaturizer(n_steps=4, static_columns=["Age"], clip_quantiles=None)
    >>> out = f.fit(events, static, [1, 2]).transform(events, static, [1, 2])
    >>> out["values"][:, :, 0].astype(float).round(2).tolist()
    [[-1.22, -1.22, 1.22, 0.0], [0.0, 0.0, 0.0, 0.0]]
    >>> out["delta"][:, :, 0].tolist(), out["lengths"].tolist()
    ([[0.0, 1.0, 2.0, 0.0], [0.0, 1.0, 0.0, 0.0]], [3, 2])
    """

    kind: ClassVar[str] = "ICUFeaturizer"

    def __init__(
        self,
        *,
        step_hours: float = 1.0,
        n_steps: int = 48,
        impute: str = "forward",
        variables: Sequence[str] | None = None,
        static_columns: Sequence[str] = DESCRIPTORS,
        clip_sigma: float | None = None,
        clip_quantiles: Sequence[float] | None = (0.005, 0.995),
        log_variables: str | Sequence[str] | None = None,
        aggregate: str = "last",
        delta_scale: str = "hours",
        static_summary: bool = False,
    ) -> None:
        self.step_hours = step_hours
        self.n_steps = n_steps
        self.impute = impute
        self.variables = variables
        self.static_columns = static_columns
        self.clip_sigma = clip_sigma
        self.clip_quantiles = clip_quantiles
        self.log_variables = log_variables
        self.aggregate = aggregate
        self.delta_scale = delta_scale
        self.static_summary = static_summary

    def _params(self) -> dict[str, Any]:
        """Constructor arguments in plain JSON types."""
        logs = self.log_variables
        if logs is not None and not isinstance(logs, str):
            logs = [str(v) for v in logs]
        return {
            "step_hours": float(self.step_hours),
            "n_steps": int(self.n_steps),
            "impute": self.impute,
            "variables": None if self.variables is None else [str(v) for v in self.variables],
            "static_columns": [str(c) for c in self.static_columns],
            "clip_sigma": None if self.clip_sigma is None else float(self.clip_sigma),
            "clip_quantiles": None if self.clip_quantiles is None else list(self.clip_quantiles),
            "log_variables": logs,
            "aggregate": self.aggregate,
            "delta_scale": self.delta_scale,
            "static_summary": bool(self.static_summary),
        }

    def _check_params(self) -> None:
        if self.impute not in IMPUTES:
            raise ValueError(f"impute must be one of {IMPUTES}, got {self.impute!r}")
        if self.delta_scale not in DELTA_SCALES:
            raise ValueError(f"delta_scale must be one of {DELTA_SCALES}, got {self.delta_scale!r}")
        if isinstance(self.static_columns, str):
            raise TypeError(f"static_columns must be a list of names, got {self.static_columns!r}")
        if self.variables is not None:
            if isinstance(self.variables, str) or len(set(self.variables)) != len(self.variables):
                raise ValueError(f"variables must be distinct names, got {self.variables!r}")
            if len(self.variables) == 0:
                raise ValueError("variables must name at least one variable, or be None")
        check_quantiles(self.clip_quantiles)
        self.discretizer_ = Discretizer(float(self.step_hours), self.n_steps, self.aggregate)

    def fit(
        self, events: pd.DataFrame, static: pd.DataFrame, subject_ids: Sequence[int] | np.ndarray
    ) -> ICUFeaturizer:
        """Learn variables, normalisation and static encoding from ``subject_ids`` only.

        The normaliser sees every in-window observation of the training subjects (before
        binning); events of other subjects in the table are ignored.
        """
        self._check_params()
        logger.info("fitting ICUFeaturizer(%s)", self._params())
        ids = as_subject_ids(subject_ids, "fit")
        variables = self.variables
        if variables is None:
            variables = _observed_codes(events, ids)
        index = index_events(
            events, ids, variables, window_hours=self.discretizer_.window_hours, where="fit"
        )
        normalizer = Normalizer(
            clip_quantiles=self.clip_quantiles,
            log_variables=self.log_variables,
            clip_sigma=self.clip_sigma,
        )
        normalizer.fit(index.var, index.value, variables)
        encoder = StaticEncoder(self.static_columns, clip_quantiles=self.clip_quantiles)
        self.static_encoder_ = encoder.fit(static, ids)
        self.normalizer_ = normalizer
        self.fit_report_ = index.report
        logger.info("ICUFeaturizer fit: %s", index.report.summary())
        return self

    @property
    def feature_names_(self) -> list[str]:
        self._check_fitted()
        return list(self.normalizer_.names_)

    @property
    def static_names_(self) -> list[str]:
        self._check_fitted()
        names = list(self.static_encoder_.names_)
        if self.static_summary:
            names += [f"{v}_{s}" for v in self.normalizer_.names_ for s in GRID_STATISTICS]
        return names

    @property
    def n_features(self) -> int:
        """``F``, the last dimension of ``values``, ``mask`` and ``delta``."""
        return len(self.feature_names_)

    @property
    def n_static(self) -> int:
        """``S``, the last dimension of ``static``."""
        return len(self.static_names_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "normalizer_"):
            raise NotFittedError(
                "this ICUFeaturizer is not fitted yet: call fit(events, static, subject_ids) "
                "on the training subjects first, or load one with from_state_dict"
            )

    def transform(
        self, events: pd.DataFrame, static: pd.DataFrame, subject_ids: Sequence[int] | np.ndarray
    ) -> dict[str, np.ndarray]:
        """Tensors for ``subject_ids`` (rows in that order); see the module doc.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        DataError
            If a subject has no row in ``static``, or a table is malformed.
        """
        self._check_fitted()
        ids = as_subject_ids(subject_ids, "transform")
        static_report = ReadReport(source="static")
        static_array = self.static_encoder_.transform(static, ids, static_report)
        grid = self.discretizer_.transform(events, ids, self.feature_names_, where="transform")
        for reason, n in static_report.counts.items():
            grid.report.add(reason, n)
        z = self.normalizer_.transform(grid.values)  # (N, T, F), NaN where unobserved
        values = self._impute(z, grid.mask, grid.last)
        pad = padding_mask(grid.lengths, self.discretizer_.n_steps)
        values = np.where(pad, 0.0, values)
        if self.static_summary:
            static_array = np.concatenate([static_array, grid_summary(z, grid.mask)], axis=1)
        self.last_transform_report_ = grid.report
        logger.info("ICUFeaturizer transform: %s", grid.report.summary())
        return {
            "values": values.astype(np.float32),
            "mask": grid.mask.astype(np.float32),
            "delta": self._scale_delta(grid.delta).astype(np.float32),
            "lengths": grid.lengths,
            "static": static_array,
        }

    def fit_transform(
        self, events: pd.DataFrame, static: pd.DataFrame, subject_ids: Sequence[int] | np.ndarray
    ) -> dict[str, np.ndarray]:
        """``fit`` then ``transform`` on the same subjects."""
        return self.fit(events, static, subject_ids).transform(events, static, subject_ids)

    def _impute(self, z: np.ndarray, mask: np.ndarray, last: np.ndarray) -> np.ndarray:
        if self.impute == "forward":
            return forward_fill(z, last, np.zeros(z.shape[2]))
        return np.where(mask, z, 0.0)  # "mean" and "zero": the training mean is 0

    def _scale_delta(self, hours: np.ndarray) -> np.ndarray:
        if self.delta_scale == "horizon":
            return hours / self.discretizer_.window_hours
        if self.delta_scale == "log1p":
            return np.log1p(hours)
        return hours

    def state_dict(self) -> dict[str, Any]:
        """The fitted state as plain JSON types (``json.dumps`` works on it)."""
        self._check_fitted()
        return {
            "version": STATE_VERSION,
            "kind": self.kind,
            "params": self._params(),
            "variables": self.feature_names_,
            "normalizer": self.normalizer_.state_dict(),
            "static": self.static_encoder_.state_dict(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ICUFeaturizer:
        """Rebuild a fitted featurizer; unknown or missing keys and other versions raise."""
        check_state(state, _STATE_KEYS, "ICUFeaturizer", STATE_VERSION)
        params = dict(state["params"])
        expected = set(cls().__dict__)
        if set(params) != expected:
            raise ValueError(
                f"ICUFeaturizer state: params keys {sorted(params)} != expected {sorted(expected)}"
            )
        self = cls(**params)
        self._check_params()
        self.normalizer_ = Normalizer.from_state_dict(state["normalizer"])
        self.static_encoder_ = StaticEncoder.from_state_dict(state["static"])
        if self.normalizer_.names_ != list(state["variables"]):
            raise ValueError("ICUFeaturizer state: variables do not match the normalizer's")
        return self

    def describe(self) -> FeaturizerDescription:
        """The five arrays of :meth:`transform`, the variable and static names, the grid."""
        sizes = {"T": int(self.n_steps), "F": self.n_features}
        grid = ("N", "T", "F")
        return FeaturizerDescription(
            kind=self.kind,
            modality="icu_events",
            inputs="event table (subject_id, time, code, value) and static descriptors",
            outputs=(
                ArraySpec("values", "float32", grid, sizes, "normalised, imputed values"),
                ArraySpec("mask", "float32", grid, sizes, "1 where observed in the bin"),
                ArraySpec("delta", "float32", grid, sizes, "time since last observed"),
                ArraySpec("lengths", "int64", ("N",), {}, "bins up to the last observed"),
                ArraySpec("static", "float32", ("N", "S"), {"S": self.n_static}, "descriptors"),
            ),
            feature_names={"F": self.feature_names_, "S": self.static_names_},
            step=f"{float(self.step_hours):g} h bin",
            step_size=float(self.step_hours),
            horizon=float(self.discretizer_.window_hours),
            time_unit="h",
        )


def _observed_codes(events: pd.DataFrame, ids: np.ndarray) -> list[str]:
    """Sorted codes with at least one finite value among the subjects ``ids``."""
    subject, _, value = event_arrays(events, "fit")
    keep = np.isin(subject, ids) & np.isfinite(value)
    codes = events["code"][keep].dropna().unique()
    if len(codes) == 0:
        raise ValueError("fit: the training subjects have no event with a value")
    return sorted(str(c) for c in codes)
