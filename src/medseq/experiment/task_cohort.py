"""The cohort of a config task, before any training: who is in, who is left out and why.

``medseq cohort CONFIG`` prints it; ``labels_out`` writes the labels in the MEDS label
schema (:mod:`medseq.tasks.meds_labels`), so other MEDS tools can use the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from medseq.datasets.registry import get_dataset
from medseq.experiment.config import ExperimentConfig
from medseq.experiment.data import resolve_data_path
from medseq.tasks.spec import CONFIG_TASKS

# The datasets whose tasks come from the config (named in refusals).
EVENT_DATASETS = "fhir_r4, meds_events, flat_events"


@dataclass
class TaskCohort:
    """A config task's cohort table and samples (see :mod:`medseq.tasks.cohort`), and the
    instant of each subject's hour 0 (``origin``) that places prediction times in time."""

    cohort: pd.DataFrame
    samples: pd.DataFrame
    labels: pd.Series
    origin: pd.Series

    @property
    def prevalence(self) -> float:
        """Share of positive samples."""
        return float(self.labels.mean())


def task_cohort(config: ExperimentConfig) -> TaskCohort:
    """Read ``config``'s training data and build its task's samples (no training).

    Raises
    ------
    ValueError
        If the config's dataset does not take tasks from a ``[task]`` table.
    """
    spec = get_dataset(config.data.dataset)
    if spec.tasks is not CONFIG_TASKS or not config.task:
        raise ValueError(
            f"{config.name}: `cohort` needs a config task: an event dataset "
            f"({EVENT_DATASETS}) and a [task] table; got dataset {config.data.dataset!r}"
        )
    data = spec.read(resolve_data_path(config.data.train))
    labels = spec.labels(config.data.task, data)
    return TaskCohort(cohort=data.cohort, samples=data.samples, labels=labels, origin=data.origin)


def fixed_origin(subjects: Any, hour0: str | None, where: str) -> pd.Series:
    """Hour 0 of every subject at the date-time ``hour0``: what MEDS needs of data on a
    relative clock (flat tables with ``time_unit``). ``where`` names the data in errors."""
    import numpy as np

    if hour0 is None:
        raise ValueError(
            f"{where}: the times are relative (time_unit) and MEDS needs date-times: "
            "pass --hour0 (e.g. 2000-01-01) for every subject's hour 0"
        )
    try:
        stamp = np.datetime64(pd.Timestamp(hour0).tz_localize(None), "us")
    except ValueError as exc:
        raise ValueError(f"--hour0 {hour0!r} is not a date-time ({exc})") from exc
    ids = np.unique(np.asarray(subjects, dtype=np.int64))
    return pd.Series(np.full(len(ids), stamp), index=ids)


def write_meds_labels(result: TaskCohort, path: str | Path, hour0: str | None = None) -> Path:
    """Write the labels as a MEDS label parquet file (prediction times as UTC instants).

    On a relative clock (no origin) ``hour0`` places every subject's hour 0, as
    :func:`export_meds` does, so the labels line up with that MEDS export."""
    from medseq.tasks import meds_labels

    origin = result.origin
    if origin is None or origin.empty:
        origin = fixed_origin(result.samples["subject_id"], hour0, str(path))
    return meds_labels.write_meds_labels(result.samples, result.labels, origin, path)


def _guess_dataset(path: Path) -> str:
    """``meds_events`` for a MEDS folder (``data/`` of parquet shards), ``flat_events`` for a
    mapping file (``.toml``), else ``fhir_r4``."""
    if path.is_dir() and (path / "data").is_dir() and any((path / "data").rglob("*.parquet")):
        return "meds_events"
    if path.suffix == ".toml":
        return "flat_events"
    return "fhir_r4"


def _event_data(
    path: str | Path, config: ExperimentConfig | None, dataset: str | None, command: str
) -> tuple[Any, Any]:
    """(spec, data) of the event data at ``path``, read by ``config``'s dataset, else
    ``dataset``, else the one guessed from the path; ``command`` names the refusal."""
    resolved = resolve_data_path(str(path))
    name = config.data.dataset if config is not None else dataset or _guess_dataset(resolved)
    spec = get_dataset(name)
    if spec.tasks is not CONFIG_TASKS:
        raise ValueError(
            f"`{command}` reads event datasets ({EVENT_DATASETS}); {name!r} has its "
            "own reader and Python tasks"
        )
    return spec, spec.read(resolved)


def inspect_data(
    path: str | Path, *, config: ExperimentConfig | None = None, dataset: str | None = None
) -> Any:
    """The :class:`~medseq.tasks.data_card.DataCard` of the event data at ``path``.

    The reader is ``config``'s dataset, else ``dataset``, else guessed from the path (a
    MEDS folder, a flat-table mapping file or FHIR files); with ``config`` the card holds
    its task's cohort table.

    Raises
    ------
    ValueError
        If the dataset is not an event dataset (its tasks are written in Python).
    """
    from medseq.tasks.data_card import inspect_events, with_cohort

    spec, data = _event_data(path, config, dataset, "data inspect")
    card = inspect_events(data.events, data.origin, data.report, source=str(path))
    if config is not None and config.task:
        labels = spec.labels(config.data.task, data)
        card = with_cohort(card, config.data.task, data.cohort, data.samples, labels)
    return card


def export_meds(
    path: str | Path,
    out: str | Path,
    *,
    dataset: str | None = None,
    hour0: str | None = None,
    subjects_per_shard: int | None = None,
) -> Path:
    """Write the event data at ``path`` as a MEDS folder at ``out``: MEDS as the hub, with
    no Python (``medseq data meds``).

    Every event reader's table goes through :func:`medseq.sources.meds.write_events`, so
    FHIR exports, flat tables and MEDS itself leave in one format other MEDS tools read.
    MEDS keeps date-times; data on a relative clock (flat tables with ``time_unit``) has
    none, so ``hour0`` gives the date-time of every subject's hour 0 (a fixed date keeps
    every interval and invents no calendar fact).

    Raises
    ------
    ValueError
        If the dataset is not an event dataset, or its times are relative and ``hour0`` is
        not given (or does not parse).
    """
    from medseq.sources import meds

    spec, data = _event_data(path, None, dataset, "data meds")
    origin = data.origin
    if origin is None or origin.empty:
        origin = fixed_origin(data.events["subject_id"].to_numpy(), hour0, str(path))
    return meds.write_events(
        data.events, origin, out, dataset_name=spec.name, subjects_per_shard=subjects_per_shard
    )
