"""Experiment configuration: one TOML file describes one published number.

The file has a few small sections, each handed to the stage that owns it::

    name = "gru"
    seeds = [0, 1, 2, 3, 4]          # one model per seed; the bundle averages them

    [data]                           # ExperimentData below
    [features]                       # the dataset's featurizer options (ICUFeaturizer's
                                     # keyword arguments for ICU data)
    [model]                          # a model config of medseq.models.registry, picked by
                                     # its ``kind`` (sizes inferred from data)
    [train]                          # medseq.training.TrainConfig
    [baseline]                       # instead of [model]/[train]: a scikit-learn baseline;
                                     # with [model]: also fitted on the same folds and
                                     # scored beside it (results.json "baseline")
    [task]                           # a task defined here (medseq.tasks.spec), for the
                                     # event datasets (fhir_r4, meds_events)
    [evaluate]                       # ExperimentEvaluate below

Unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from medseq.schema import check_known_keys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

T = TypeVar("T")
BASELINES = ("logistic_regression", "hist_gradient_boosting")
STEP_FEATURES = ("inputs", "history")


@dataclass(frozen=True)
class ExperimentData:
    """Which files to train, validate and test on.

    Paths are absolute or relative to the data root (``$MEDSEQ_DATA`` or
    ``../shared/data``). Validation is a stratified, subject-disjoint split of ``train``
    (``val_fraction``), or with ``cv_folds >= 2`` each of k stratified folds in turn, one
    ensemble member per fold, so every training subject is used for fitting and every one
    gets an out-of-fold prediction for threshold selection. ``test`` is touched once, after
    model selection; ``test = ""`` makes a selection run that reports validation metrics
    only, so hyperparameters can be compared without looking at the test set.
    ``protocol`` names a split protocol of the dataset (e.g. ``"official"``,
    ``"scaffold"``, ``"de_chazal"``) that takes validation and test from the one ``train``
    path; ``test`` must then be empty. ``dataset`` and ``task`` are checked against the
    dataset registry (:mod:`medseq.datasets.registry`).
    ``max_subjects`` keeps only the first n labelled subjects (by id) of
    each set, for smoke tests and quick trials; published numbers never set it.
    ``score_test = false`` makes a protocol run a selection run too: the protocol's test
    part is neither predicted nor scored, so configurations can be compared on their
    (out-of-fold) validation metrics before the chosen one is tested once.
    ``inner_val_fraction > 0`` takes that share of each fold's training subjects (by
    patient, stratified) for early stopping, so the fold's validation part is truly held
    out: without it the members stop on the very predictions they are scored on, and the
    out-of-fold metrics are optimistic. Use it when those metrics are the result (a dataset
    without a test set) rather than a tool for choosing among configurations.
    """

    dataset: str = "physionet2012"
    train: str = "physionet2012/set-a.tar.gz"
    test: str | None = None  # None: set B for physionet2012 without a protocol, else none
    task: str = "mortality"
    val_fraction: float = 0.2
    cv_folds: int = 0
    inner_val_fraction: float = 0.0
    split_seed: int = 0
    max_subjects: int | None = None
    protocol: str = ""
    score_test: bool = True

    def __post_init__(self) -> None:
        from medseq.datasets.registry import get_dataset

        spec = get_dataset(self.dataset)
        if self.test is None:
            default = self.dataset == "physionet2012" and not self.protocol
            object.__setattr__(self, "test", "physionet2012/set-b.tar.gz" if default else "")
        from medseq.tasks.spec import CONFIG_TASKS

        if self.task not in spec.tasks and spec.tasks is CONFIG_TASKS:
            raise ValueError(
                f"[data] task {self.task!r} is not defined: dataset {self.dataset!r} takes "
                "its tasks from a [task] table in the experiment file (docs/own_data.md)"
            )
        if self.task not in spec.tasks:
            raise ValueError(
                f"[data] task must be one of {sorted(spec.tasks)} for dataset "
                f"{self.dataset!r}, got {self.task!r}"
            )
        if self.protocol:
            spec.protocol(self.protocol)
            if self.test:
                raise ValueError(
                    f"[data] protocol {self.protocol!r} takes the test set from `train`; "
                    f'set test = "" (got test = {self.test!r})'
                )
        if not isinstance(self.score_test, bool):
            raise ValueError(f"[data] score_test must be true or false, got {self.score_test!r}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"[data] val_fraction must be in (0, 1), got {self.val_fraction!r}")
        if not 0.0 <= self.inner_val_fraction < 1.0:
            raise ValueError(
                f"[data] inner_val_fraction must be in [0, 1), got {self.inner_val_fraction!r}"
            )
        if self.max_subjects is not None and self.max_subjects < 20:
            raise ValueError(f"[data] max_subjects must be >= 20, got {self.max_subjects}")
        if self.cv_folds == 1 or self.cv_folds < 0:
            raise ValueError(
                f"[data] cv_folds must be 0 (single split) or >= 2, got {self.cv_folds}"
            )


@dataclass(frozen=True)
class ExperimentEvaluate:
    """How test metrics are reported.

    ``threshold`` is the rule that picks the decision threshold on validation predictions
    (``youden``, ``f1``, or ``sensitivity``/``specificity`` with ``threshold_target``, e.g.
    0.8 for "at least 80 % sensitivity").
    """

    n_boot: int = 1000
    threshold: str = "youden"
    threshold_target: float | None = None
    ci_alpha: float = 0.05


@dataclass(frozen=True)
class BaselineConfig:
    """A non-neural baseline on per-variable summary statistics.

    For per-step (sequence-labelling) tasks, ``features`` says what one row per step holds:
    ``"inputs"``, the recurrent model's own inputs at that step (what the recurrence adds),
    or ``"history"``, hand-made causal history features of each variable
    (:mod:`medseq.features.icu.history_features`, window ``history_window_hours``), the
    tree baseline of the PhysioNet/CinC 2019 winners.
    """

    kind: str = "hist_gradient_boosting"
    params: dict[str, Any] = field(default_factory=dict)
    features: str = "inputs"
    history_window_hours: int = 6

    def __post_init__(self) -> None:
        if self.kind not in BASELINES:
            raise ValueError(f"[baseline] kind must be one of {BASELINES}, got {self.kind!r}")
        if self.features not in STEP_FEATURES:
            raise ValueError(
                f"[baseline] features must be one of {STEP_FEATURES}, got {self.features!r}"
            )
        if self.history_window_hours < 1:
            raise ValueError(
                f"[baseline] history_window_hours must be >= 1, got {self.history_window_hours}"
            )


@dataclass(frozen=True)
class ExperimentConfig:
    """A parsed experiment file. ``model``/``train`` are raw dicts validated by their stage."""

    name: str
    data: ExperimentData = field(default_factory=ExperimentData)
    features: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] | None = None
    train: dict[str, Any] = field(default_factory=dict)
    baseline: BaselineConfig | None = None
    evaluate: ExperimentEvaluate = field(default_factory=ExperimentEvaluate)
    seeds: tuple[int, ...] = (0,)
    output_dir: str = ""
    task: dict[str, Any] = field(default_factory=dict)

    @property
    def task_type(self) -> str:
        """binary, multiclass, multilabel or regression, as the dataset defines the task."""
        from medseq.datasets.registry import get_dataset

        return get_dataset(self.data.dataset).task_type(self.data.task)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _section(cls: type, name: str, raw: dict[str, Any]) -> Any:
    check_known_keys(f"[{name}]", raw, {f.name for f in fields(cls)})
    return cls(**raw)


def parse_config(raw: dict[str, Any], default_name: str = "experiment") -> ExperimentConfig:
    """Build an :class:`ExperimentConfig` from a TOML-shaped dict, rejecting unknown keys."""
    allowed = {f.name for f in fields(ExperimentConfig)}
    check_known_keys("top level", raw, allowed)
    if raw.get("model") is None and raw.get("baseline") is None:
        raise ValueError("a config needs a [model] or a [baseline] section")
    seeds = tuple(int(s) for s in raw.get("seeds", (0,)))
    if not seeds:
        raise ValueError("seeds must list at least one seed")
    name = str(raw.get("name", default_name))
    task = dict(raw.get("task") or {})
    if task:  # registered before [data] is checked, so [data] task finds it
        from medseq.tasks.spec import define_task

        data = raw.get("data", {})
        dataset = str(data.get("dataset", ExperimentData.dataset))
        define_task(dataset, str(data.get("task", "")), task)
    return ExperimentConfig(
        name=name,
        data=_section(ExperimentData, "data", raw.get("data", {})),
        features=dict(raw.get("features", {})),
        model=dict(raw["model"]) if raw.get("model") is not None else None,
        train=dict(raw.get("train", {})),
        baseline=_section(BaselineConfig, "baseline", raw["baseline"])
        if raw.get("baseline")
        else None,
        evaluate=_section(ExperimentEvaluate, "evaluate", raw.get("evaluate", {})),
        seeds=seeds,
        output_dir=str(raw.get("output_dir", f"runs/{name}")),
        task=task,
    )


def load_toml(
    path: str | Path,
    parse: Callable[[dict[str, Any], str], T],
    overrides: Sequence[str] = (),
) -> T:
    """Read a TOML file, apply ``overrides`` and ``parse(raw, default_name)`` it; every error
    names the file."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: invalid TOML ({err})") from None
    try:
        return parse(apply_overrides(raw, overrides), path.stem)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from None


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``raw`` with each ``"section.key=value"`` set, for a trial run without editing a file.

    The value is read as a TOML value (``2``, ``0.1``, ``true``, ``[0, 1]``, ``"gru"``); a
    bare word that is not one (``gru``) is taken as a string. The keys are checked against
    the config's fields afterwards, like the file's own, and the run's ``results.json``
    records the config as overridden, so the run stays reproducible.
    """
    out = copy.deepcopy(raw)
    for assignment in overrides:
        key, sep, text = assignment.partition("=")
        path = [part.strip() for part in key.split(".")]
        if not sep or not all(path):
            raise ValueError(
                f"override {assignment!r} must look like section.key=value "
                "(e.g. train.epochs=2 or data.max_subjects=500)"
            )
        try:
            value = tomllib.loads(f"value = {text.strip()}")["value"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        table = out
        for depth, part in enumerate(path[:-1]):
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                where = ".".join(path[: depth + 1])
                raise ValueError(f"override {assignment!r}: {where} is a value, not a table")
        table[path[-1]] = value
    return out


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read an experiment TOML file, with ``section.key=value`` overrides; errors name the
    file."""
    return load_toml(path, parse_config, overrides)
