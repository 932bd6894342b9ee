"""Streaming engine: each patient's recurrent state, advanced only over new time steps.

A recurrent model reads an ICU stay bin by bin, so the risk after a new observation needs
only the state at the end of the previous bin: the engine keeps, per patient, the
featurizer's memory (a :class:`~medseq.features.icu.incremental.FeatureState`) and each
member's hidden state and pooling terms **at the end of the last closed bin**. An observation

* in the open (latest) bin changes that bin only: its one recurrent step is recomputed
  from the saved state;
* in a later bin closes the open bin (its step is folded in), steps through the empty bins
  in between (forward-filled values, growing δ) and opens the new bin.

The result equals ``Bundle.predict`` over the same full history (``tests/unit/serving``
checks ≤ 1e-5 on real stays). An observation earlier than the open bin would rewrite
closed history and is refused (:class:`ObservationError`), before anything changes.
Events outside the featurizer's window are left out exactly as the batch transform leaves
them out, and reported back.

The engine is stateless about patients: callers hold :class:`PatientState` objects (the
service keeps them in memory and in SQLite, :mod:`medseq.serving.store`).

The engine names no featurizer: the incremental form of the bundle's featurizer (bins,
normalisation, fill, δ, summaries; :class:`IncrementalFeatures`) comes from the bundle's
dataset spec, whose ``streaming`` part builds it (``stream_features(featurizer)``). A
dataset without that part is refused with the spec's sentence.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from medseq.bundle import Bundle
from medseq.features.icu.incremental import FeatureState
from medseq.serving.recurrent import NumpyMember, numpy_member

logger = logging.getLogger(__name__)


class ObservationError(ValueError):
    """An observation cannot be applied; ``index`` and ``field`` name it for a 422 answer."""

    def __init__(self, index: int, field_name: str, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.field = field_name


@dataclass(frozen=True)
class Observation:
    """One value of a model variable at ``time`` hours since admission."""

    code: str
    time: float
    value: float


#: the stage named when a bundle's dataset spec has no ``streaming`` part
ENGINE_STAGE = "the streaming engine"


class IncrementalFeatures(Protocol):
    """What the engine asks of a featurizer's incremental form (one patient, one bin at a
    time); :class:`medseq.features.icu.incremental.StreamFeaturizer` is the one in use."""

    index: dict[str, int]
    static_columns: list[str]
    static_summary: bool
    step_hours: float

    def new_state(self) -> FeatureState: ...
    def bin_of(self, time_hours: float) -> int: ...
    def in_window(self, time_hours: float) -> str | None: ...
    def add(self, state: FeatureState, j: int, time_hours: float, value: float) -> None: ...
    def open_bin_features(self, state: FeatureState) -> Any: ...
    def bin_features(self, state: FeatureState, t: int, z: np.ndarray | None) -> Any: ...
    def close_bin(self, state: FeatureState, t: int, z: np.ndarray | None) -> None: ...
    def summary(self, state: FeatureState, z_open: np.ndarray) -> np.ndarray: ...
    def encode_static(self, static_raw: Mapping[str, float]) -> np.ndarray: ...


def stream_features(bundle: Bundle) -> IncrementalFeatures:
    """The incremental form of ``bundle``'s featurizer, built by its dataset spec's
    ``streaming`` part; :class:`~medseq.datasets.registry.StageUnsupported` naming the
    dataset and why when the spec has none."""
    part = bundle.spec().require("streaming", ENGINE_STAGE).load()
    build = getattr(part, "stream_features", None)
    if build is None:
        from medseq.datasets.registry import StageUnsupported

        raise StageUnsupported(
            f"{ENGINE_STAGE} is not available for dataset {bundle.dataset!r}: its streaming "
            f"part ({part.__name__}) has no stream_features(featurizer); it advances stays "
            "with its own engine (its open_service)"
        )
    return build(bundle.featurizer)


@dataclass(slots=True)
class PatientState:
    """Everything the engine needs to continue one stay (see the module doc).

    ``hidden`` (M, L, K*H) and ``pool`` (M, D+2) hold the M members' state at the end of the
    last closed bin; ``alert`` the hysteresis flag; ``n_observations`` counts applied ones;
    ``alert_run`` the consecutive steps pointing against ``alert`` (per-step streaming,
    :attr:`AlertPolicy.onset_steps`).

    ``slots=True``: the service caches up to ``max_cached_patients`` of these, and a
    per-instance ``__dict__`` was a tenth of a cached state.
    """

    features: FeatureState
    hidden: np.ndarray
    pool: np.ndarray
    alert: bool = False
    n_observations: int = 0
    last_time: float = -math.inf
    risk: float = math.nan
    alert_run: int = 0
    _static_vec: np.ndarray | None = field(default=None, repr=False)
    # per member NumpyMember.closed_terms of the open bin, and (engine token, open bin) they
    # belong to; dropped whenever a bin closes, and not kept when the service packs the
    # state (:mod:`medseq.serving.compact`; a third of a live state); never persisted
    _terms: list[tuple[np.ndarray, ...]] | None = field(default=None, repr=False)
    _terms_key: tuple[object, int] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class UpdateResult:
    """Outcome of :meth:`StreamingEngine.update`."""

    risk: float
    alert: bool
    n_applied: int
    skipped: list[dict]
    length: int


@dataclass(frozen=True)
class AlertPolicy:
    """Alert on when risk >= ``on``; off again only when risk < ``on - hysteresis``.

    The gap stops an alert from flickering as a risk near the threshold moves up and
    down with each new observation. Engines that advance whole steps (an hourly row) also
    count steps: on after ``onset_steps`` consecutive steps at or above ``on``, off after
    ``clear_steps`` consecutive steps below ``on - hysteresis``.
    """

    on: float
    hysteresis: float = 0.0
    onset_steps: int = 1
    clear_steps: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.on <= 1.0:
            raise ValueError(f"alert threshold must be in [0, 1], got {self.on!r}")
        if not 0.0 <= self.hysteresis < 1.0:
            raise ValueError(f"alert hysteresis must be in [0, 1), got {self.hysteresis!r}")
        for name in ("onset_steps", "clear_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"alert {name} must be >= 1, got {getattr(self, name)!r}")

    def next(self, alert: bool, risk: float) -> bool:
        return risk >= self.on if not alert else risk >= self.on - self.hysteresis


class StreamingEngine:
    """Advance patients' states with the numpy copy of a bundle's members.

    Parameters
    ----------
    bundle : Bundle
        Binary or regression; every member must be causal (not bidirectional).
    alert : AlertPolicy, optional
        Default: on at the bundle's threshold (0.5 without one), no hysteresis.
    features : IncrementalFeatures, optional
        The featurizer's incremental form. Default: the one the bundle's dataset spec
        builds (:func:`stream_features`).
    """

    def __init__(
        self,
        bundle: Bundle,
        alert: AlertPolicy | None = None,
        features: IncrementalFeatures | None = None,
    ) -> None:
        self.task = bundle.task
        self.features = stream_features(bundle) if features is None else features
        self.members: list[NumpyMember] = [numpy_member(m) for m in bundle.members]
        threshold = 0.5 if bundle.threshold is None else float(bundle.threshold)
        self.alert = alert or AlertPolicy(on=threshold)
        self.uses_static = bundle.model_config.static_size > 0
        self._token = object()  # marks the step terms this engine cached in a PatientState

    def new_state(self, static: Mapping[str, float] | None = None) -> PatientState:
        """A stay with no observation yet."""
        state = PatientState(
            features=self.features.new_state(),
            hidden=np.stack([m.initial_hidden() for m in self.members]),
            pool=np.stack([m.initial_pool() for m in self.members]),
        )
        self.set_static(state, static or {})
        state.risk = self.predict(state)
        return state

    def set_static(self, state: PatientState, static: Mapping[str, float]) -> None:
        """Replace descriptors (only the named ones); they enter only the output head."""
        unknown = sorted(set(static) - set(self.features.static_columns))
        if unknown:
            raise ObservationError(-1, "static", f"unknown descriptors {unknown}")
        state.features.static_raw.update({k: float(v) for k, v in static.items()})
        state._static_vec = None

    def check(self, state: PatientState, observations: Sequence[Observation]) -> None:
        """Raise :class:`ObservationError` for the first observation that cannot be applied."""
        open_bin = state.features.open_bin
        for i, obs in enumerate(observations):
            if not (math.isfinite(obs.time) and math.isfinite(obs.value)):
                raise ObservationError(i, "value", "time and value must be finite numbers")
            if self.features.in_window(obs.time) is None and obs.code in self.features.index:
                k = self.features.bin_of(obs.time)
                if k < open_bin:
                    start = open_bin * self.features.step_hours
                    raise ObservationError(
                        i, "time",
                        f"out of order: time {obs.time:g} h falls before the patient's open "
                        f"bin, which starts at {start:g} h; earlier bins are closed",
                    )  # fmt: skip

    def update(
        self,
        state: PatientState,
        observations: Sequence[Observation],
        static: Mapping[str, float] | None = None,
    ) -> UpdateResult:
        """Apply ``observations`` (any order) and return the new risk; all or nothing."""
        self.check(state, observations)
        if static:
            self.set_static(state, static)
        skipped: list[dict] = []
        applied = 0
        for i in sorted(range(len(observations)), key=lambda k: observations[k].time):
            obs = observations[i]
            reason = self._skip_reason(obs)
            if reason is not None:
                skipped.append({"index": i, "code": obs.code, "reason": reason})
                continue
            self._advance_to(state, self.features.bin_of(obs.time))
            self.features.add(state.features, self.features.index[obs.code], obs.time, obs.value)
            state.last_time = max(state.last_time, obs.time)
            applied += 1
        state.n_observations += applied
        state.risk = self.predict(state)
        state.alert = self.alert.next(state.alert, state.risk) if self.task == "binary" else False
        length = state.features.open_bin + 1
        return UpdateResult(state.risk, state.alert, applied, skipped, length)

    def _skip_reason(self, obs: Observation) -> str | None:
        if obs.code not in self.features.index:
            return "unknown_code"
        return self.features.in_window(obs.time)

    def _advance_to(self, state: PatientState, target: int) -> None:
        """Close the open bin and step through empty bins until ``target`` is open."""
        fs = state.features
        if target <= fs.open_bin:
            return
        feats = self.features.open_bin_features(fs)
        self._fold_step(state, feats)
        self.features.close_bin(fs, fs.open_bin, feats.z)
        for t in range(fs.open_bin + 1, target):
            gap = self.features.bin_features(fs, t, None)
            self._fold_step(state, gap)
            self.features.close_bin(fs, t, None)
        fs.open_bin = target

    def _x_last(self, fs: FeatureState, member: NumpyMember) -> np.ndarray:
        if member.cell != "grud":
            return fs.last_z
        seen = fs.last_bin >= 0
        return np.where(seen, fs.last_z.astype(np.float32).astype(np.float64), member.x_mean)

    def _fold_step(self, state: PatientState, feats) -> None:
        for m, member in enumerate(self.members):
            x_last = self._x_last(state.features, member)
            hidden, out = member.step(
                state.hidden[m], feats.values, feats.mask, feats.delta, x_last
            )
            state.hidden[m] = hidden
            state.pool[m] = member.fold(state.pool[m], out)
        state._terms = None

    def static_vector(self, state: PatientState, z_open: np.ndarray) -> np.ndarray | None:
        """The model's ``static`` input: encoded descriptors (+ running summary)."""
        if not self.uses_static:
            return None
        if state._static_vec is None:
            encoded = self.features.encode_static(state.features.static_raw)
            state._static_vec = encoded.astype(np.float64)
        if not self.features.static_summary:
            return state._static_vec
        summary = self.features.summary(state.features, z_open)  # float32, widened here
        return np.concatenate([state._static_vec, summary], dtype=np.float64)

    def predict(self, state: PatientState) -> float:
        """Risk (binary: mean member probability) over the history up to the open bin."""
        fs = state.features
        feats = self.features.open_bin_features(fs)
        static = self.static_vector(state, feats.z)
        total = 0.0
        key = (self._token, fs.open_bin)
        # the step terms of the closed bins, computed once per open bin
        terms = state._terms
        if terms is None or state._terms_key != key:
            terms = [
                m.closed_terms(state.hidden[i], feats.delta, self._x_last(fs, m))
                for i, m in enumerate(self.members)
            ]
            state._terms, state._terms_key = terms, key
        for m, member in enumerate(self.members):
            _, out = member.step(
                state.hidden[m], feats.values, feats.mask, feats.delta, None, terms[m]
            )
            logit = float(member.head(member.pooled(state.pool[m], out), static)[0])
            total += 1.0 / (1.0 + math.exp(-logit)) if self.task == "binary" else logit
        return total / len(self.members)
