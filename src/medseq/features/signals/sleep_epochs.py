"""Per-epoch EEG features of a sleep recording, repaired and z-scored on training nights.

The Sleep-EDF feature files (``shared/data/sleepedf_features/SOURCE.md``) store, per 30-s
epoch and per EEG channel (Fpz-Cz columns 0-8, Pz-Oz 9-17), ``log(mean band PSD + 1e-10)``
for the delta, theta, alpha, beta and gamma bands, two "ratios" of those logs,
``log(var + 1e-10)`` and the Hjorth mobility ``sqrt(var(diff) / (var + 1e-10))``, with
the signal in volts. The band powers are ~1e-14..1e-9 V^2/Hz, so the ``1e-10`` swamps them:
86-94 % of the alpha, beta and gamma values sit within 0.05 of ``log(1e-10)``, and after a
z-score they look constant. The values are float64, so nothing is lost, only hidden:

* ``recover_power=True`` takes ``log(exp(x) - 1e-10)``, the true log power, for the band
  and variance columns, recomputes the two ratios as log-ratios (theta/alpha and
  alpha/delta powers) and undoes the ``1e-10`` in the mobility's denominator.
* ``context_columns=True`` appends the stored columns 18-71 (first difference, centred
  3-epoch mean and sd of the *stored* base features) as they are. A sequence model sees
  the neighbouring epochs itself, so the default leaves them out; they are there to measure
  what that +-1-epoch context gives a per-epoch model.
* ``per_night=True`` first z-scores every column with the mean and sd of the night's own
  epochs (label-free, the night alone), so a subject's overall EEG amplitude and electrode
  contact, which differ between people more than between stages, are taken out before the
  model sees the night. It assumes whole nights (the window around sleep), as served.

Every column is then z-scored with the mean and sd of the training nights' epochs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from medseq.features.base import ArraySpec, FeaturizerDescription
from medseq.schema import check_known_keys

N_BASE = 18
N_STORED = 72
FLOOR = 1e-10
CHANNELS = ("Fpz-Cz", "Pz-Oz")
BASE_NAMES = ("delta", "theta", "alpha", "beta", "gamma", "theta_alpha", "alpha_delta",
              "log_var", "mobility")  # fmt: skip
_LOG_COLUMNS = (0, 1, 2, 3, 4, 7)  # log(x + 1e-10) columns, per channel offset


def recovered_base(stored: np.ndarray) -> np.ndarray:
    """The 18 base columns with the ``1e-10`` floor undone (see the module docstring).

    Powers at or below the floor after subtraction (none in the published files) are set
    to the smallest positive power of their column, so the log stays finite.
    """
    out = np.array(stored[:, :N_BASE], dtype=np.float64)
    for c in (0, 9):
        for k in _LOG_COLUMNS:
            power = np.exp(stored[:, c + k]) - FLOOR
            positive = power[power > 0]
            smallest = positive.min() if positive.size else FLOOR
            out[:, c + k] = np.log(np.where(power > 0, power, smallest))
        out[:, c + 5] = out[:, c + 1] - out[:, c + 2]  # log(theta / alpha)
        out[:, c + 6] = out[:, c + 2] - out[:, c + 0]  # log(alpha / delta)
        var = np.exp(out[:, c + 7])
        out[:, c + 8] = stored[:, c + 8] * np.sqrt((var + FLOOR) / var)
    return out


def feature_names(context_columns: bool) -> list[str]:
    """Column names of :meth:`SleepEpochFeaturizer.transform`'s output."""
    base = [f"{ch}_{name}" for ch in CHANNELS for name in BASE_NAMES]
    if not context_columns:
        return base
    return base + [f"{kind}_{name}" for kind in ("diff", "mean3", "sd3") for name in base]


def _night_scaled(columns: np.ndarray) -> np.ndarray:
    """``columns`` (n_epochs, F) z-scored with the night's own mean and sd per column.

    A column constant over the night (sd 0) is only centred. One epoch is no night: the
    sd of a single row is undefined, so it is refused.
    """
    if len(columns) < 2:
        raise ValueError(
            f"SleepEpochFeaturizer(per_night=True) needs a night of >= 2 epochs to scale by "
            f"its own mean and sd, got {len(columns)}; send the whole night's window"
        )
    scale = columns.std(axis=0)
    return (columns - columns.mean(axis=0)) / np.where(scale > 0, scale, 1.0)


@dataclass
class SleepEpochFeaturizer:
    """Epoch feature matrices ``(n_epochs, 72)`` -> z-scored float32 ``(n_epochs, F)``.

    Parameters
    ----------
    recover_power : bool, default=True
        Undo the ``1e-10`` floor of the stored log powers (module docstring).
    context_columns : bool, default=False
        Append the stored +-1-epoch context columns 18-71 (``F = 72`` instead of 18).
    per_night : bool, default=False
        Z-score every column within each night before the training-night z-score (module
        docstring); needs nights of at least two epochs.
    """

    kind: ClassVar[str] = "sleep_epochs"

    recover_power: bool = True
    context_columns: bool = False
    per_night: bool = False
    mean_: list[float] | None = field(default=None, repr=False)
    scale_: list[float] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in ("recover_power", "context_columns", "per_night"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"SleepEpochFeaturizer.{name} must be a bool, "
                                f"got {getattr(self, name)!r}")  # fmt: skip

    @property
    def n_features(self) -> int:
        """Columns of the output: 18, or 72 with the context columns."""
        return N_STORED if self.context_columns else N_BASE

    def raw(self, stored: np.ndarray) -> np.ndarray:
        """The unscaled output columns of one night's stored matrix ``(n, 72)``."""
        stored = np.asarray(stored, dtype=np.float64)
        if stored.ndim != 2 or stored.shape[1] != N_STORED:
            raise ValueError(
                f"SleepEpochFeaturizer expects (n_epochs, {N_STORED}) stored features, "
                f"got {stored.shape}"
            )
        base = recovered_base(stored) if self.recover_power else stored[:, :N_BASE]
        if self.context_columns:
            base = np.concatenate([base, stored[:, N_BASE:]], axis=1)
        return _night_scaled(base) if self.per_night else base

    def fit(self, matrices: Sequence[np.ndarray]) -> SleepEpochFeaturizer:
        """Mean and sd of every output column over the epochs of the training nights."""
        if not matrices:
            raise ValueError("SleepEpochFeaturizer.fit needs at least one night")
        rows = np.concatenate([self.raw(m) for m in matrices])
        scale = rows.std(axis=0)
        self.mean_ = rows.mean(axis=0).tolist()
        self.scale_ = np.where(scale > 0, scale, 1.0).tolist()
        return self

    def transform(self, stored: np.ndarray) -> np.ndarray:
        """Z-scored float32 ``(n_epochs, n_features)`` of one night."""
        if self.mean_ is None or self.scale_ is None:
            raise ValueError("SleepEpochFeaturizer is not fitted; call fit(matrices) first")
        scaled = (self.raw(stored) - np.asarray(self.mean_)) / np.asarray(self.scale_)
        return scaled.astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON: the options, the fitted mean and sd, and ``kind``."""
        return {
            "kind": self.kind,
            "recover_power": self.recover_power,
            "context_columns": self.context_columns,
            "per_night": self.per_night,
            "mean_": self.mean_,
            "scale_": self.scale_,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> SleepEpochFeaturizer:
        """Inverse of :meth:`state_dict`; unknown keys are an error naming them."""
        state = dict(state)
        kind = state.pop("kind", cls.kind)
        if kind != cls.kind:
            raise ValueError(f"not a {cls.kind!r} featurizer state: kind={kind!r}")
        check_known_keys("SleepEpochFeaturizer state", state,
                         ["recover_power", "context_columns", "per_night", "mean_",
                          "scale_"])  # fmt: skip
        return cls(**state)

    def describe(self) -> FeaturizerDescription:
        """``values`` (N, T, F): the z-scored features of each 30-s epoch of a night,
        ``lengths`` (N,) in epochs."""
        if self.mean_ is None:
            raise RuntimeError("SleepEpochFeaturizer.describe called before fit")
        names = feature_names(self.context_columns)
        return FeaturizerDescription(
            kind=self.kind,
            modality="eeg_epochs",
            inputs="per-30-s-epoch EEG features of whole nights",
            outputs=(
                ArraySpec("values", "float32", ("N", "T", "F"), {"F": len(names)}, "z-scored"),
                ArraySpec("lengths", "int64", ("N",), {}, "epochs before the padding"),
            ),
            feature_names={"F": names},
            step="30-s epoch",
            step_size=30.0,
            time_unit="s",
        )
