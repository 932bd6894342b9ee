"""A prediction task written in the experiment TOML: cohort, prediction time, label, window.

A hospital's own data needs its own questions. Instead of a Python task module per
question, a ``[task]`` table describes one binary task over the canonical event table
(``subject_id, time, code, value``, :mod:`medseq.schema`) that every reader produces
(FHIR R4, MEDS, flat CSV)::

    [task.prediction_time]          # one of: a fixed instant, or an anchor event + offset
    date = "2019-01-01T00:00:00Z"
    # anchor = ["ENCOUNTER/IMP"]    # codes; a trailing * matches a prefix
    # occurrence = "first"          # first, last, or every anchor event of each subject
    # offset_hours = 24.0

    [task.cohort]
    min_age_years = 18              # age at the prediction time (from MEDS_BIRTH)
    max_age_years = 120
    sex = ["F", "M"]                # GENDER/<x> codes
    require_codes = []              # at least one of these before the prediction time
    exclude_codes = []              # none of these before the prediction time
    min_events = 1                  # input events in the observation window

    [task.label]
    codes = ["ENCOUNTER/EMER", "ENCOUNTER/IMP"]   # or: death = true
    # or a numeric value crossing a threshold (above and/or below):
    # value_codes = ["http://loinc.org|4548-4"]; above = 6.5
    within_hours = 8760             # (prediction time, prediction time + within_hours]
    censored = "exclude"            # or "negative": follow-up ends before the window does

    [task.observation]
    window_hours = 26280            # inputs: [prediction time - window, prediction time)
    visit_hours = 24                # visits: bins of this width back from the prediction time

Instead of ``[task.prediction_time]`` and ``[task.label]``, a ``[task.meds_labels]`` table
takes both from a label file in the MEDS label schema written by another tool (one row
per ``subject_id, prediction_time``; see :mod:`medseq.tasks.meds_labels`)::

    [task.meds_labels]
    path = "labels.parquet"         # a file, or a folder of *.parquet shards
    value = "boolean_value"         # or integer_value / float_value / numeric_value /
                                    # categorical_value (then: above = X, or positive = [...])

``occurrence = "every"`` gives a subject one sample per anchor event; samples are then
keyed by ``(subject_id, prediction_time)`` and splits stay by subject
(:mod:`medseq.tasks.cohort`).

Unknown keys are errors. The definition round-trips through :meth:`TaskSpec.to_dict`, so
a run's ``results.json`` and its bundle carry the exact task. Building the samples is
:func:`medseq.tasks.cohort.build_task`; the labels are :mod:`medseq.tasks.labels`.

Config tasks are registered by name (:data:`CONFIG_TASKS`) when an experiment file is
parsed, because the dataset hooks of the runner receive a task *name*
(:class:`~medseq.datasets.registry.DatasetSpec`); the event datasets look the definition
up there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from medseq.schema import check_known_keys

logger = logging.getLogger(__name__)

BIRTH_CODE = "MEDS_BIRTH"
DEATH_CODE = "MEDS_DEATH"
GENDER_PREFIX = "GENDER/"
OCCURRENCES = ("first", "last", "every")
LABEL_VALUES = (
    "boolean_value",
    "integer_value",
    "float_value",
    "numeric_value",
    "categorical_value",
)
CENSORED = ("exclude", "negative")
HOURS_PER_YEAR = 24.0 * 365.25


def _codes(where: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError(f"{where} must be a list of code strings, got {value!r}")
    if not all(isinstance(c, str) and c.strip("*") for c in value):
        raise ValueError(f"{where} must hold non-empty code strings, got {value!r}")
    return tuple(value)


def _number(where: str, value: Any, *, low: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{where} must be >= {low}, got {value!r}")
    return float(value)


def match_codes(codes: pd.Series, patterns: tuple[str, ...]) -> np.ndarray:
    """Boolean mask of ``codes`` equal to a pattern, or starting with one ending in ``*``."""
    exact = [p for p in patterns if not p.endswith("*")]
    prefixes = tuple(p[:-1] for p in patterns if p.endswith("*"))
    mask = codes.isin(exact).to_numpy().copy()
    if prefixes:
        mask |= codes.astype(str).str.startswith(prefixes).to_numpy()
    return mask


@dataclass(frozen=True)
class PredictionTime:
    """When each subject is predicted: a fixed instant (``date``) or an anchor + offset."""

    date: str = ""
    anchor: tuple[str, ...] = ()
    occurrence: str = "first"
    offset_hours: float = 0.0

    def __post_init__(self) -> None:
        where = "[task.prediction_time]"
        if bool(self.date) == bool(self.anchor):
            raise ValueError(f"{where} needs exactly one of date or anchor")
        if self.date:
            try:
                pd.Timestamp(self.date)
            except ValueError:
                raise ValueError(
                    f"{where} date must be an ISO 8601 date or date-time, got {self.date!r}"
                ) from None
        object.__setattr__(self, "anchor", _codes(f"{where} anchor", self.anchor))
        if self.occurrence not in OCCURRENCES:
            raise ValueError(
                f"{where} occurrence must be one of {OCCURRENCES}, got {self.occurrence!r}"
            )
        object.__setattr__(
            self, "offset_hours", _number(f"{where} offset_hours", self.offset_hours, low=0.0)
        )

    def instant(self) -> pd.Timestamp:
        """The fixed date as a UTC timestamp (a naive date is taken as UTC)."""
        stamp = pd.Timestamp(self.date)
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


@dataclass(frozen=True)
class Cohort:
    """Who is predicted: filters on sex, age and codes before the prediction time."""

    min_age_years: float = 0.0
    max_age_years: float = 200.0
    sex: tuple[str, ...] = ()
    require_codes: tuple[str, ...] = ()
    exclude_codes: tuple[str, ...] = ()
    min_events: int = 1

    def __post_init__(self) -> None:
        where = "[task.cohort]"
        low = _number(f"{where} min_age_years", self.min_age_years, low=0.0)
        high = _number(f"{where} max_age_years", self.max_age_years, low=0.0)
        if high < low:
            raise ValueError(f"{where} max_age_years ({high}) is below min_age_years ({low})")
        object.__setattr__(self, "min_age_years", low)
        object.__setattr__(self, "max_age_years", high)
        for name in ("sex", "require_codes", "exclude_codes"):
            object.__setattr__(self, name, _codes(f"{where} {name}", getattr(self, name)))
        if isinstance(self.min_events, bool) or not isinstance(self.min_events, int):
            raise ValueError(f"{where} min_events must be an integer, got {self.min_events!r}")
        if self.min_events < 1:
            raise ValueError(f"{where} min_events must be >= 1, got {self.min_events}")


@dataclass(frozen=True)
class Label:
    """What is predicted within ``within_hours`` after the prediction time: a code in
    ``codes``, death, or a value of one of ``value_codes`` above ``above`` (strictly) or
    below ``below`` (strictly); a lab crossing a threshold is the third kind."""

    codes: tuple[str, ...] = ()
    death: bool = False
    value_codes: tuple[str, ...] = ()
    above: float | None = None
    below: float | None = None
    within_hours: float = 8760.0
    censored: str = "exclude"

    def __post_init__(self) -> None:
        where = "[task.label]"
        if not isinstance(self.death, bool):
            raise ValueError(f"{where} death must be true or false, got {self.death!r}")
        for name in ("codes", "value_codes"):  # [] from to_dict is ()
            if isinstance(getattr(self, name), list) and not getattr(self, name):
                object.__setattr__(self, name, ())
        kinds = [bool(self.codes), self.death, bool(self.value_codes)]
        if sum(kinds) != 1:
            raise ValueError(f"{where} needs exactly one of codes, death = true or value_codes")
        if self.codes:
            object.__setattr__(self, "codes", _codes(f"{where} codes", self.codes))
        if self.value_codes:
            object.__setattr__(
                self, "value_codes", _codes(f"{where} value_codes", self.value_codes)
            )
            if self.above is None and self.below is None:
                raise ValueError(f"{where} value_codes needs a threshold: above = X or below = X")
        elif self.above is not None or self.below is not None:
            raise ValueError(f"{where} above/below are thresholds of value_codes; set value_codes")
        for name in ("above", "below"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _number(f"{where} {name}", getattr(self, name)))
        hours = _number(f"{where} within_hours", self.within_hours)
        if hours <= 0:
            raise ValueError(f"{where} within_hours must be > 0, got {hours}")
        object.__setattr__(self, "within_hours", hours)
        if self.censored not in CENSORED:
            raise ValueError(f"{where} censored must be one of {CENSORED}, got {self.censored!r}")

    @property
    def patterns(self) -> tuple[str, ...]:
        """The codes whose events can make a sample positive."""
        if self.death:
            return (DEATH_CODE,)
        return self.value_codes or self.codes

    def crosses(self, values: np.ndarray) -> np.ndarray:
        """Which ``values`` cross the threshold (all True for a code or death label; NaN
        never crosses)."""
        values = np.asarray(values, dtype=np.float64)
        if not self.value_codes:
            return np.ones(values.shape, dtype=bool)
        hit = np.zeros(values.shape, dtype=bool)
        with np.errstate(invalid="ignore"):
            if self.above is not None:
                hit |= values > self.above
            if self.below is not None:
                hit |= values < self.below
        return hit


@dataclass(frozen=True)
class MedsLabels:
    """Samples and labels from a MEDS label file (``subject_id, prediction_time`` and a
    value column); see :mod:`medseq.tasks.meds_labels`.

    ``value`` names the column read. A boolean or integer 0/1 column is the label; a numeric
    column needs ``above`` (positive when the value is strictly above it); a categorical
    column needs ``positive`` (the categories that count as positive).
    """

    path: str = ""
    value: str = "boolean_value"
    above: float | None = None
    positive: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        where = "[task.meds_labels]"
        if not isinstance(self.path, str) or not self.path:
            raise ValueError(f"{where} needs path = the MEDS label parquet file or folder")
        if self.value not in LABEL_VALUES:
            raise ValueError(f"{where} value must be one of {LABEL_VALUES}, got {self.value!r}")
        if self.above is not None:
            object.__setattr__(self, "above", _number(f"{where} above", self.above))
        if self.positive:
            object.__setattr__(self, "positive", _codes(f"{where} positive", self.positive))
        else:
            object.__setattr__(self, "positive", ())
        numeric = self.value in ("float_value", "numeric_value")
        if numeric != (self.above is not None):
            raise ValueError(
                f"{where} above = X is needed for a numeric value column and only for one "
                f"(value = {self.value!r})"
            )
        if (self.value == "categorical_value") != bool(self.positive):
            raise ValueError(
                f"{where} positive = [categories] is needed for value = 'categorical_value' "
                f"and only for it (value = {self.value!r})"
            )


@dataclass(frozen=True)
class Observation:
    """Which past the inputs see: ``window_hours`` before the prediction time (0: all),
    grouped into visits of ``visit_hours`` counted back from the prediction time."""

    window_hours: float = 0.0
    visit_hours: float = 24.0

    def __post_init__(self) -> None:
        hours = _number("[task.observation] window_hours", self.window_hours, low=0.0)
        object.__setattr__(self, "window_hours", hours)
        visit = _number("[task.observation] visit_hours", self.visit_hours)
        if visit <= 0:
            raise ValueError(f"[task.observation] visit_hours must be > 0, got {visit}")
        object.__setattr__(self, "visit_hours", visit)


@dataclass(frozen=True)
class TaskSpec:
    """A binary task over the canonical event table; see the module docstring."""

    prediction_time: PredictionTime | None
    label: Label | None
    cohort: Cohort = field(default_factory=Cohort)
    observation: Observation = field(default_factory=Observation)
    meds_labels: MedsLabels | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TaskSpec:
        """Parse a ``[task]`` table; unknown keys and missing sections are errors."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"[task] must be a table, got {type(raw).__name__}")
        parts: dict[str, type] = {
            "prediction_time": PredictionTime,
            "label": Label,
            "cohort": Cohort,
            "observation": Observation,
            "meds_labels": MedsLabels,
        }
        check_known_keys("[task]", dict(raw), set(parts))
        if "meds_labels" in raw:
            given = [n for n in ("prediction_time", "label") if n in raw]
            if given:
                raise ValueError(
                    f"[task.meds_labels] gives the prediction times and labels; remove "
                    f"[task.{given[0]}]"
                )
        else:
            for needed in ("prediction_time", "label"):
                if needed not in raw:
                    raise ValueError(f"[task] needs a [task.{needed}] table")
        built: dict[str, Any] = {}
        for name, kind in parts.items():
            if name not in raw and name not in ("cohort", "observation"):
                built[name] = None
                continue
            table = raw.get(name, {})
            if not isinstance(table, Mapping):
                raise ValueError(f"[task.{name}] must be a table, got {table!r}")
            check_known_keys(f"[task.{name}]", dict(table), {f.name for f in fields(kind)})
            built[name] = kind(**table)
        return cls(**built)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/TOML (tuples as lists); ``from_dict(to_dict())`` gives the same spec."""

        def plain(value: Any) -> Any:
            if isinstance(value, dict):  # None: a default left unset (TOML has no null)
                return {k: plain(v) for k, v in value.items() if v is not None}
            return list(value) if isinstance(value, tuple) else value

        return plain(asdict(self))


class ConfigTasks(Mapping[str, str]):
    """Task name -> ``"binary"`` for the tasks defined in configs, with their definitions.

    A :class:`~medseq.datasets.registry.DatasetSpec` whose ``tasks`` is this mapping takes
    its tasks from ``[task]`` tables: :func:`medseq.experiment.config.parse_config`
    registers each one under its ``[data] task`` name.
    """

    def __init__(self) -> None:
        self._specs: dict[str, TaskSpec] = {}

    def __getitem__(self, name: str) -> str:
        self.definition(name)
        return "binary"

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def definition(self, name: str) -> TaskSpec:
        """The definition registered as ``name``."""
        if name not in self._specs:
            raise KeyError(
                f"no config task {name!r} is defined; write its [task] table in the experiment "
                f"file (defined now: {sorted(self._specs) or 'none'})"
            )
        return self._specs[name]

    def register(self, name: str, spec: TaskSpec) -> None:
        """Define (or redefine: the file parsed last wins, and it is logged) task ``name``."""
        if not name:
            raise ValueError("a config task needs a name: set [data] task")
        if name in self._specs and self._specs[name] != spec:
            logger.info("config task %r redefined", name)
        self._specs[name] = spec


#: The config-defined tasks of this process (see :class:`ConfigTasks`).
CONFIG_TASKS = ConfigTasks()


def define_task(dataset: str, name: str, raw: Mapping[str, Any]) -> TaskSpec:
    """Parse ``raw`` (a ``[task]`` table) and register it as ``name`` for ``dataset``.

    Raises
    ------
    ValueError
        If ``dataset``'s tasks are written in Python (it takes no ``[task]`` table), or the
        table is malformed.
    """
    from medseq.datasets.registry import get_dataset

    spec = get_dataset(dataset)
    if spec.tasks is not CONFIG_TASKS:
        raise ValueError(
            f"dataset {dataset!r} defines its tasks in Python ({sorted(spec.tasks)}) and takes "
            "no [task] table; config tasks need an event dataset such as 'fhir_r4' or "
            "'meds_events'"
        )
    task = TaskSpec.from_dict(raw)
    CONFIG_TASKS.register(name, task)
    return task
