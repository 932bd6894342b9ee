"""``HourlyICUFeaturizer``: one input vector per ICU hour, for causal per-hour labelling.

A per-step (sequence-labelling) model such as ``ConvRNN(mode="sequence", conv_channels=())``
reads one array ``values`` ``(N, T, C)`` and ``lengths``; it has no separate mask or static
input. This featurizer wraps :class:`~medseq.features.icu.featurizer.ICUFeaturizer` (fitted on
the training subjects only, its JSON state carried inside) and lays out, at every hour ``t``:

* the ``F`` normalised, forward-filled values (the last observation at or before ``t``);
* the ``F`` observation flags of hour ``t`` (so the model knows what was measured, not only
  what was carried forward);
* the ``S`` encoded static descriptors, repeated at every hour (known at admission).

Every channel at hour ``t`` depends on events at or before ``t`` only, so a unidirectional
recurrence over it is causal. (The inner grid puts an event at the window's right edge,
``time == n_steps * step_hours``, into the last bin; that would be the next hour's data in
hour ``T - 1``, so such events are left out here, in ``fit`` and ``transform``.)

``lengths`` are the grid's (the hour of the last event in the window, plus one); the sepsis
dataset adds an ``ICULOS`` event per charted hour so that every charted hour is inside
``lengths``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from medseq.features.base import ArraySpec, FeaturizerDescription
from medseq.features.icu.featurizer import ICUFeaturizer

STATE_VERSION = 1


class HourlyICUFeaturizer:
    """Values, observation flags and static descriptors concatenated per hour.

    Parameters
    ----------
    **params
        The :class:`ICUFeaturizer` keyword arguments (``n_steps``, ``static_columns``, ...).
    """

    kind: ClassVar[str] = "hourly_icu"

    def __init__(self, **params: Any) -> None:
        self.params = dict(params)
        self.grid_ = ICUFeaturizer(**self.params)

    def fit(
        self, events: pd.DataFrame, static: pd.DataFrame, subject_ids: Sequence[int] | np.ndarray
    ) -> HourlyICUFeaturizer:
        """Fit the inner grid on ``subject_ids`` only."""
        self.grid_.fit(self._before_edge(events), static, subject_ids)
        return self

    def _before_edge(self, events: pd.DataFrame) -> pd.DataFrame:
        """Events strictly before the window's right edge (see the module docstring)."""
        edge = self.grid_.step_hours * self.grid_.n_steps
        at_edge = events["time"].to_numpy() >= edge
        return events[~at_edge] if at_edge.any() else events

    def window_events(self, events: pd.DataFrame) -> pd.DataFrame:
        """The events ``fit`` and ``transform`` read (those before the right edge): a
        federated fit (:class:`~medseq.features.icu.federated.HourlyFederatedFit`) computes
        each site's statistics on exactly these."""
        return self._before_edge(events)

    @property
    def n_steps(self) -> int:
        return int(self.grid_.n_steps)

    @property
    def channel_names_(self) -> list[str]:
        """The ``C`` channels: variables, ``observed:<variable>``, static columns."""
        names = self.grid_.feature_names_
        return [*names, *(f"observed:{n}" for n in names), *self.grid_.static_names_]

    @property
    def n_features(self) -> int:
        """``C``, the last dimension of ``values``."""
        return len(self.channel_names_)

    def transform(
        self, events: pd.DataFrame, static: pd.DataFrame, subject_ids: Sequence[int] | np.ndarray
    ) -> dict[str, np.ndarray]:
        """``values`` (N, T, C) float32 and ``lengths`` (N,) int64; zeros past ``lengths``."""
        grid = self.grid_.transform(self._before_edge(events), static, subject_ids)
        n, t, _ = grid["values"].shape
        repeated = np.broadcast_to(grid["static"][:, None, :], (n, t, grid["static"].shape[1]))
        values = np.concatenate([grid["values"], grid["mask"], repeated], axis=2)
        past = np.arange(t)[None, :] >= grid["lengths"][:, None]
        values[past] = 0.0
        return {"values": values.astype(np.float32), "lengths": grid["lengths"]}

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON: the kind, a version and the inner grid's state."""
        return {"kind": self.kind, "version": STATE_VERSION, "grid": self.grid_.state_dict()}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> HourlyICUFeaturizer:
        """Rebuild a fitted featurizer; another kind or version raises."""
        if state.get("kind") != cls.kind or state.get("version") != STATE_VERSION:
            raise ValueError(
                f"HourlyICUFeaturizer state: expected kind {cls.kind!r} version "
                f"{STATE_VERSION}, got {state.get('kind')!r} version {state.get('version')!r}"
            )
        self = cls.__new__(cls)
        self.grid_ = ICUFeaturizer.from_state_dict(state["grid"])
        self.params = dict(state["grid"]["params"])
        return self

    def describe(self) -> FeaturizerDescription:
        """``values`` over an hourly clock, channel names along ``C``."""
        sizes = {"T": self.n_steps, "C": self.n_features}
        return FeaturizerDescription(
            kind=self.kind,
            modality="icu_events",
            inputs="event table (subject_id, time, code, value) and static descriptors",
            outputs=(
                ArraySpec("values", "float32", ("N", "T", "C"), sizes, "values, flags, static"),
                ArraySpec("lengths", "int64", ("N",), {}, "hours up to the last charted"),
            ),
            feature_names={"C": self.channel_names_},
            step=f"{float(self.grid_.step_hours):g} h bin",
            step_size=float(self.grid_.step_hours),
            horizon=float(self.grid_.discretizer_.window_hours),
            time_unit="h",
        )
