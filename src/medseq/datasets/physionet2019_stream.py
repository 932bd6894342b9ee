"""PhysioNet 2019 sepsis early warning, streamed one ICU hour at a time: the ``streaming``
part of the ``physionet2019`` spec.

``POST /v1/patients/{id}/observations`` takes the Challenge's hourly rows, the same rows as
``POST /v1/predict`` (:mod:`medseq.datasets.physionet2019_serving`)::

    {"hours": [{"ICULOS": 1, "HR": 97, "O2Sat": 95, "Age": 68.5, "Gender": 1}]}

one or more complete hours per update, ``ICULOS`` rising by exactly one from the last hour
already sent. The answer's ``risk`` is the model's sepsis probability at the last hour sent.

Why it is O(1) per hour: the features are causal (:class:`~medseq.features.icu.hourly.
HourlyICUFeaturizer`: forward-filled normalised values, observation flags, descriptors)
and the recurrence is unidirectional, so an hour needs only (a) each variable's last
normalised value (the forward fill, :class:`~medseq.features.icu.incremental.FeatureState`,
the ICU engine's own incremental featurizer on the inner grid) and (b) each member's
recurrent hidden state after the previous hour. Both are the :class:`PatientState` that the
service persists in SQLite as the ICU engine's, with the rows themselves (replayed when
another model version takes over).

Alerts (hysteresis over hours, :func:`next_alert`): an alert is raised after ``onset_steps``
consecutive hours with risk ``>= on`` (the bundle's threshold, chosen for utility on
validation data) and cleared after ``clear_steps`` consecutive hours with risk below
``on - hysteresis``.

Hours past the bundle's horizon (``n_steps``, 72 h): the batch routes refuse them, since
the model was trained on the first 72 hours; streaming keeps advancing (the recurrence and
the forward fill are defined at every hour), so a stay is monitored to its end, but those
hours extrapolate beyond training and have no offline prediction to compare with.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medseq.features.icu.incremental import StreamFeaturizer
from medseq.serving.engine import (
    AlertPolicy,
    Observation,
    ObservationError,
    PatientState,
    UpdateResult,
)
from medseq.serving.inputs import History
from medseq.serving.recurrent import StreamingUnsupported
from medseq.serving.requests import RequestContext, validate
from medseq.serving.schemas import Strict
from medseq.serving.service import StreamService
from medseq.sources import physionet2019 as source

#: Hours per update body (two weeks: a backlog after a network outage, not a whole archive).
MAX_UPDATE_HOURS = 24 * 14


def next_alert(policy: AlertPolicy, alert: bool, run: int, risk: float) -> tuple[bool, int]:
    """The alert and its run counter after one more hour of ``risk``.

    ``run`` counts the consecutive hours pointing the other way (above ``on`` while off,
    below ``on - hysteresis`` while on); the alert flips when it reaches ``onset_steps`` or
    ``clear_steps``, and the counter restarts.
    """
    if not alert:
        run = run + 1 if risk >= policy.on else 0
        return (True, 0) if run >= policy.onset_steps else (False, run)
    run = run + 1 if risk < policy.on - policy.hysteresis else 0
    return (False, 0) if run >= policy.clear_steps else (True, run)


class HourlyEngine:
    """Advance per-hour sepsis states with the bundle's members, one hour at a time.

    Parameters
    ----------
    bundle : Bundle
        A ``sepsis_6h`` bundle: an ``hourly_icu`` featurizer and per-step members
        (``ConvRNN`` with ``mode="sequence"``, no convolution, unidirectional).
    alert : AlertPolicy
    """

    def __init__(self, bundle: Any, alert: AlertPolicy) -> None:
        self.task = bundle.task
        self.alert = alert
        self.features = StreamFeaturizer(bundle.featurizer.grid_)
        if self.features.static_summary:
            raise StreamingUnsupported("the hourly featurizer's grid has static_summary on")
        self.members = [_check_member(m) for m in bundle.members]
        cfg = self.members[0].config
        self.n_layers = cfg.num_layers * (2 if cfg.cell == "lstm" else 1)
        self.hidden_size = cfg.hidden_size
        self.width = bundle.featurizer.n_features

    def new_state(self, static: Mapping[str, float] | None = None) -> PatientState:
        """A stay with no hour yet; ``last_time`` (the last ``ICULOS``) is -inf."""
        shape = (len(self.members), self.n_layers, self.hidden_size)
        state = PatientState(
            features=self.features.new_state(),
            hidden=np.zeros(shape, dtype=np.float32),
            pool=np.zeros((len(self.members), 1)),  # per-step outputs: nothing is pooled
        )
        state.features.static_raw.update({k: float(v) for k, v in (static or {}).items()})
        return state

    def check(self, state: PatientState, observations: Sequence[Observation]) -> None:
        """Raise :class:`ObservationError` unless the hours continue the stay one by one."""
        expected = state.last_time + 1 if math.isfinite(state.last_time) else None
        for i, obs in enumerate(observations):
            if not (math.isfinite(obs.time) and math.isfinite(obs.value)):
                raise ObservationError(i, "value", "ICULOS and values must be finite numbers")
        first: dict[float, int] = {}  # hour -> index of its first observation
        for i, obs in enumerate(observations):
            first.setdefault(obs.time, i)
        for hour in sorted(first):
            if expected is not None and hour != expected:
                raise ObservationError(
                    first[hour], "ICULOS",
                    f"ICULOS {hour:g} does not follow the stay's last hour "
                    f"{expected - 1:g}: send each ICU hour once, in order, without gaps",
                )  # fmt: skip
            expected = hour + 1

    def update(
        self,
        state: PatientState,
        observations: Sequence[Observation],
        static: Mapping[str, float] | None = None,
    ) -> UpdateResult:
        """Apply whole hours (observations grouped by ``time`` = ICULOS); all or nothing."""
        self.check(state, observations)
        skipped: list[dict] = []
        if static and not math.isfinite(state.last_time):
            state.features.static_raw.update({k: float(v) for k, v in static.items()})
        elif static:  # the stay's first hour fixed them, as the reader takes the first row's
            known = state.features.static_raw
            skipped += [
                {"index": 0, "code": k, "reason": "descriptor_differs_from_first_hour"}
                for k, v in static.items()
                if k in known and known[k] == known[k] and float(v) != known[k]
            ]
        by_hour: dict[float, list[int]] = {}
        for i, obs in enumerate(observations):
            by_hour.setdefault(obs.time, []).append(i)
        applied = 0
        for hour in sorted(by_hour):
            for i in by_hour[hour]:
                obs = observations[i]
                if obs.code not in self.features.index:
                    skipped.append({"index": i, "code": obs.code, "reason": "unknown_code"})
                    continue
                self.features.add(state.features, self.features.index[obs.code], 0.0, obs.value)
                applied += 1
            self._step_hour(state, hour)
        state.n_observations += applied
        return UpdateResult(state.risk, state.alert, applied, skipped, self.n_hours(state))

    @staticmethod
    def n_hours(state: PatientState) -> int:
        """Hours seen so far (``open_bin`` holds the last hour's index on the stay's clock)."""
        return state.features.open_bin + 1 if math.isfinite(state.last_time) else 0

    def _step_hour(self, state: PatientState, iculos: float) -> None:
        fs = state.features
        t = self.n_hours(state)
        z = self.features.normalize(self.features._raw_open_bin(fs))
        feats = self.features.bin_features(fs, t, z)
        self.features.close_bin(fs, t, z)
        fs.open_bin, state.last_time = t, iculos
        x = np.concatenate([feats.values, feats.mask, self._static(state)]).astype(np.float32)
        state.risk = self._advance(state, x)
        state.alert, state.alert_run = next_alert(
            self.alert, state.alert, state.alert_run, state.risk
        )

    def _static(self, state: PatientState) -> np.ndarray:
        if state._static_vec is None:
            state._static_vec = self.features.encode_static(state.features.static_raw)
        return state._static_vec

    def _advance(self, state: PatientState, x: np.ndarray) -> float:
        """One recurrent step of every member; the mean sepsis probability."""
        import torch

        if x.shape[0] != self.width:
            raise ValueError(f"hour vector has {x.shape[0]} channels, the model {self.width}")
        total = 0.0
        values = torch.from_numpy(x).view(1, 1, -1)
        with torch.no_grad():
            for m, member in enumerate(self.members):
                hidden = _to_torch(state.hidden[m], member.config.cell)
                out, carried = member.forward_chunk(values, {"contexts": None, "hidden": hidden})
                probs = _probabilities(member.step_logits(out)[0, 0], self.task)
                state.hidden[m] = _from_torch(carried["hidden"])
                total += float(probs[-1])
        return total / len(self.members)


def _check_member(module: Any) -> Any:
    """The member, if it can be stepped one hour at a time; else :class:`StreamingUnsupported`."""
    config: Any = getattr(module, "config", None)
    if type(module).__name__ != "ConvRNN" or getattr(config, "mode", None) != "sequence":
        raise StreamingUnsupported(
            f"hourly streaming steps a per-step ConvRNN (mode='sequence'); got "
            f"{type(module).__name__}"
        )
    if config.bidirectional or config.conv_channels:
        raise StreamingUnsupported(
            "hourly streaming needs a unidirectional recurrence without a convolutional front "
            "end (bidirectional=false, conv_channels=[]): each hour must depend on earlier "
            "hours only and advance by one step"
        )
    module.eval()
    return module


def _probabilities(logits: Any, task: str) -> Any:
    import torch

    return torch.softmax(logits, dim=-1) if task == "multiclass" else torch.sigmoid(logits)


def _to_torch(hidden: np.ndarray, cell: str) -> Any:
    """(L or 2L, H) -> the fused module's hidden ((L, 1, H), or (h, c) for an LSTM)."""
    import torch

    h = torch.from_numpy(np.ascontiguousarray(hidden, dtype=np.float32)).unsqueeze(1)
    if cell == "lstm":
        half = h.shape[0] // 2
        return (h[:half].contiguous(), h[half:].contiguous())
    return h


def _from_torch(hidden: Any) -> np.ndarray:
    if isinstance(hidden, tuple):
        return np.concatenate([hidden[0][:, 0].numpy(), hidden[1][:, 0].numpy()])
    return hidden[:, 0].numpy()


# -- the spec's streaming part -----------------------------------------------------------


class HourlyStreamService(StreamService):
    """The ICU :class:`~medseq.serving.service.StreamService` (memory, SQLite commit before
    the answer, replay after a model change) with :class:`HourlyEngine` as its engine."""

    def _make_engine(self, bundle: Any, alert: AlertPolicy) -> Any:
        self.alert_policy = alert
        return HourlyEngine(bundle, alert)

    def describe(self) -> dict[str, Any]:
        """Streaming part of the model card: the alert rule counts hours."""
        info = super().describe()
        if self.engine is not None:
            policy = self.alert_policy
            info["alert"].update(onset_steps=policy.onset_steps, clear_steps=policy.clear_steps)
            info["step"] = "1 h (one Challenge row)"
        return info


def open_service(bundle: Any, version: str, store: Any, alert: AlertPolicy, **options: Any) -> Any:
    """The streaming service of a sepsis bundle (:class:`HourlyStreamService`; ``options``
    such as ``max_cached_patients`` are the ICU service's)."""
    return HourlyStreamService(bundle, version, store, alert, **options)


def _update_model() -> type[Strict]:
    """``{"hours": [row, ...]}``, rows as in ``POST /v1/predict``."""
    import functools

    from pydantic import Field, create_model

    from medseq.datasets.physionet2019_serving import hour_model

    @functools.cache
    def build() -> type[Strict]:
        rows: Any = (list[hour_model()], Field(min_length=1, max_length=MAX_UPDATE_HOURS))  # type: ignore[misc]
        return create_model("SepsisHoursIn", __base__=Strict, hours=rows)

    return build()


def observations(
    obj: Any, patient_id: str, admission: str | None, context: RequestContext
) -> tuple[History, tuple[str, ...]]:
    """An update body's hours as a :class:`History`: per hour, its ``ICULOS`` and the
    values the reader keeps from such a row (implausible ones left out and listed), at
    ``time`` = ``ICULOS``; the first row's descriptors as ``static``."""
    from medseq.datasets.physionet2019_serving import _check_hours, _notes
    from medseq.sources._psv import WideRows

    body = validate(_update_model(), obj)
    rows = [row.model_dump(exclude_none=True) for row in body.hours]
    hours = [int(r["ICULOS"]) for r in rows]
    _check_hours(hours, MAX_UPDATE_HOURS, ("body", "hours"))
    block = np.full((len(rows), len(source.HEADER)), np.nan)
    for j, row in enumerate(rows):
        for name, value in row.items():
            block[j, source.HEADER.index(name)] = float(value)
    index = np.arange(len(rows), dtype=np.int64)
    data = source.from_rows(WideRows(np.zeros(len(rows), np.int64), index + 2, block), index[:1])
    history = History(patient_id, skipped=_notes(block, index)["skipped"])
    iculos = np.asarray(hours, dtype=np.float64)
    events = data.events
    row_of = np.searchsorted(iculos, events["time"].to_numpy())
    for j, hour in enumerate(iculos):
        history.observations.append(Observation("ICULOS", float(hour), float(hour)))
        history.origins.append(j)
    for code, time, value, j in zip(
        events["code"], events["time"], events["value"], row_of, strict=True
    ):
        history.observations.append(Observation(str(code), float(time), float(value)))
        history.origins.append(int(j))
    static = data.static.iloc[0]
    history.static = {c: float(static[c]) for c in source.DESCRIPTORS if static[c] == static[c]}
    return history, ("body", "hours")


def describe(featurizer: Any) -> dict[str, Any]:
    """Inputs of the model card: the hourly channels, the variables and their units."""
    from medseq.datasets.physionet2019_serving import UNITS

    return {
        "variables": list(featurizer.grid_.feature_names_),
        "static_columns": list(featurizer.grid_.static_encoder_.columns),
        "units": UNITS,
        "stream_body": {"hours": "the Challenge's hourly rows, ICULOS rising by one"},
    }
