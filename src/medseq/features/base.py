"""The featurizer protocol, and the description every featurizer gives of its inputs and outputs.

Every registered featurizer (:mod:`medseq.features.registry`) implements :class:`Featurizer`:
``fit`` on training data, ``transform`` to model arrays, ``state_dict`` / ``from_state_dict``
as plain JSON, and ``describe()``. Later stages (serving, ONNX export, the report, explain)
read :class:`FeaturizerDescription` instead of probing a featurizer's attributes
(``hasattr(featurizer, "feature_names_")``), so they never need to know which featurizer
class a bundle holds: the arrays the model takes, their dtypes and named dimensions, the
feature names where there are any, and the time step and horizon where there is a clock.

Named dimensions follow the models' docstrings: ``N`` samples, ``T`` steps, ``F`` features
per step, ``S`` static features, ``C`` channels or codes, ``K`` variants, ``D`` slices,
``H``/``W`` slice height and width, ``V`` vocabulary. A dimension whose size is fixed by the
fit (``F``, ``S``, ``H``...) has it in :attr:`ArraySpec.sizes`; ``N`` and usually ``T``
vary per call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

#: What a featurizer reads, in words the capability matrix and the service can show.
MODALITIES = ("icu_events", "ecg", "signal", "eeg_epochs", "molecule", "volume", "visits")


@dataclass(frozen=True)
class ArraySpec:
    """One array of ``transform``'s output.

    Attributes
    ----------
    name : str
        Key in the dict ``transform`` returns (and the model's ``forward`` argument).
    dtype : str
        NumPy dtype name (``"float32"``, ``"int64"``).
    dims : tuple of str
        Named dimensions, e.g. ``("N", "T", "F")``.
    sizes : mapping of str to int
        The sizes the fit fixes, by dimension name (``{"F": 36}``); dimensions not named
        here (``N``, a padded ``T``) vary from call to call.
    description : str
        One line saying what the values are.
    """

    name: str
    dtype: str
    dims: tuple[str, ...]
    sizes: Mapping[str, int] = field(default_factory=dict)
    description: str = ""

    def check(self, array: np.ndarray) -> None:
        """Raise ValueError when ``array`` does not have this spec's dtype, rank and sizes."""
        array = np.asarray(array)
        where = f"array {self.name!r}"
        if array.dtype != np.dtype(self.dtype):
            raise ValueError(f"{where}: dtype {array.dtype}, described as {self.dtype}")
        if array.ndim != len(self.dims):
            raise ValueError(f"{where}: shape {array.shape}, described with dims {self.dims}")
        for dim, size in zip(self.dims, array.shape, strict=True):
            if dim in self.sizes and self.sizes[dim] != size:
                raise ValueError(f"{where}: dim {dim} is {size}, described as {self.sizes[dim]}")


@dataclass(frozen=True)
class FeaturizerDescription:
    """What a fitted featurizer takes and gives; :meth:`to_dict` is plain JSON.

    Attributes
    ----------
    kind : str
        The featurizer's registry kind (:data:`medseq.features.registry.FEATURIZERS`).
    modality : str
        One of :data:`MODALITIES`.
    inputs : str
        What ``transform`` reads, in words (e.g. "event table and static descriptors").
    outputs : tuple of ArraySpec
        The arrays ``transform`` returns, in the order a model's ``forward`` names them.
    feature_names : mapping of str to list of str
        Names along a dimension, by dimension name (``{"F": [...], "S": [...]}``; ``"V"``
        for a token vocabulary, ``"C"`` for codes); empty where the values have no names.
    step : str
        What one step of ``T`` is ("1 h bin", "sample", "beat", "visit", "token", "slice").
    step_size, horizon : float or None
        Length of one step and of the whole window in ``time_unit``; None without a clock.
    time_unit : str or None
        ``"h"`` or ``"s"``; None when steps are not time (tokens, slices, beats, visits).
    """

    kind: str
    modality: str
    inputs: str
    outputs: tuple[ArraySpec, ...]
    feature_names: Mapping[str, list[str]] = field(default_factory=dict)
    step: str = ""
    step_size: float | None = None
    horizon: float | None = None
    time_unit: str | None = None

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(
                f"{self.kind}: modality must be one of {MODALITIES}, got {self.modality!r}"
            )
        names = [a.name for a in self.outputs]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"{self.kind}: outputs must be distinct and non-empty, got {names}")

    @property
    def output_names(self) -> list[str]:
        """The keys of ``transform``'s dict, in order."""
        return [a.name for a in self.outputs]

    def output(self, name: str) -> ArraySpec:
        """The :class:`ArraySpec` called ``name``; unknown names list the outputs."""
        for spec in self.outputs:
            if spec.name == name:
                return spec
        raise KeyError(f"{self.kind} has no output {name!r}; its outputs: {self.output_names}")

    def names(self, dim: str) -> list[str]:
        """Feature names along ``dim``; a clear error when this featurizer has none there."""
        if dim not in self.feature_names:
            raise ValueError(
                f"featurizer {self.kind!r} has no feature names along {dim!r}; "
                f"it names {sorted(self.feature_names) or 'none'}"
            )
        return list(self.feature_names[dim])

    def hours(self) -> tuple[float, float]:
        """``(step, horizon)`` in hours of an hourly grid; an error naming the kind otherwise."""
        if self.time_unit != "h" or self.step_size is None or self.horizon is None:
            raise ValueError(
                f"featurizer {self.kind!r} has no hourly clock (step {self.step!r}, "
                f"time unit {self.time_unit!r})"
            )
        return float(self.step_size), float(self.horizon)

    def check(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Raise ValueError when ``arrays`` (a ``transform`` output) disagrees with this."""
        if sorted(arrays) != sorted(self.output_names):
            raise ValueError(
                f"{self.kind}: transform gave {sorted(arrays)}, described {self.output_names}"
            )
        for spec in self.outputs:
            spec.check(arrays[spec.name])
        n = {len(arrays[name]) for name in self.output_names}
        if len(n) != 1:
            raise ValueError(f"{self.kind}: outputs disagree on N: {sorted(n)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (tuples become lists)."""
        out = asdict(self)
        out["outputs"] = [
            {**asdict(a), "dims": list(a.dims), "sizes": dict(a.sizes)} for a in self.outputs
        ]
        out["feature_names"] = {k: list(v) for k, v in self.feature_names.items()}
        return out

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> FeaturizerDescription:
        """Inverse of :meth:`to_dict`."""
        outputs = tuple(
            ArraySpec(
                name=a["name"],
                dtype=a["dtype"],
                dims=tuple(a["dims"]),
                sizes=dict(a.get("sizes", {})),
                description=a.get("description", ""),
            )
            for a in state["outputs"]
        )
        return cls(**{**dict(state), "outputs": outputs})


@runtime_checkable
class Featurizer(Protocol):
    """What every registered featurizer implements.

    ``fit`` and ``transform`` take the modality's own data (an event table and descriptors,
    signals, SMILES strings, volumes, visit samples); the dataset spec's ``fit_featurizer``
    and ``transform`` call them. ``transform`` returns the arrays :meth:`describe` lists.
    ``isinstance(obj, Featurizer)`` checks that the methods are there (not their types).
    """

    kind: str

    def fit(self, *args: Any, **kwargs: Any) -> Any:
        """Learn the state from training data only; returns ``self``."""
        ...

    def transform(self, *args: Any, **kwargs: Any) -> dict[str, np.ndarray]:
        """Model inputs, named as in :meth:`describe`."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """The fitted state as plain JSON, ``"kind"`` included."""
        ...

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Any:
        """A fitted featurizer from :meth:`state_dict`'s output."""
        ...

    def describe(self) -> FeaturizerDescription:
        """Inputs and outputs of the fitted featurizer."""
        ...


GRID_OUTPUTS = ("values", "mask", "lengths", "static")


def time_grid_gap(description: FeaturizerDescription) -> str | None:
    """Why stages built on a time grid of named variables (per-variable missingness,
    attributions per variable and hour, the streaming grid) do not apply; None when they do.

    The grid needs the ``values``/``mask``/``lengths``/``static`` arrays, names along ``F``
    and ``S``, and a clock (``step_size`` in hours).
    """
    d = description
    missing = [name for name in GRID_OUTPUTS if name not in d.output_names]
    if missing:
        return f"featurizer {d.kind!r} gives no {missing} arrays"
    clocked = d.time_unit == "h" and d.step_size is not None and d.horizon is not None
    if not {"F", "S"} <= set(d.feature_names) or not clocked:
        return f"featurizer {d.kind!r} has no named variables on an hourly time grid"
    return None


def describe(featurizer: Any) -> FeaturizerDescription:
    """``featurizer.describe()``, or a clear error naming the class that lacks it."""
    method = getattr(featurizer, "describe", None)
    if method is None:
        raise TypeError(
            f"{type(featurizer).__name__} does not implement the featurizer protocol "
            "(medseq.features.base.Featurizer): it has no describe()"
        )
    description = method()
    if not isinstance(description, FeaturizerDescription):
        raise TypeError(
            f"{type(featurizer).__name__}.describe() returned {type(description).__name__}, "
            "expected a FeaturizerDescription"
        )
    return description
