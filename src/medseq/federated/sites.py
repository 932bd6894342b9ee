"""Each site's own data: its samples of the read set, their labels and its local split.

The experiment's dataset spec reads the set, labels it for the task and names the sites
(``spec.partitions[partition]``); a site process (or a simulated site) calls
:func:`load_site` and works on its own sample ids only: the featurizer statistics, the
local training and the local validation all take ``site.train_ids`` / ``site.val_ids``.
(Here every site reads the one configured set and keeps its share; a real deployment
points each site at its own data.) Reads are cached per process, so a simulated site that
is rebuilt every round does not read the set again.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from medseq.datasets.registry import DatasetSpec, get_dataset
from medseq.federated.config import FederatedConfig, FederatedExperiment
from medseq.federated.partition import SitePartition

logger = logging.getLogger(__name__)

Labels: TypeAlias = pd.Series | pd.DataFrame


@dataclass(frozen=True)
class Site:
    """One site: the read set, its own training and validation ids and their labels."""

    name: str
    data: Any
    train_ids: np.ndarray
    val_ids: np.ndarray
    labels: Labels

    @property
    def n_train(self) -> int:
        return len(self.train_ids)


def make_partition(
    spec: DatasetSpec, data: Any, labels: Labels, config: FederatedConfig
) -> SitePartition:
    """The configured partition (``spec.partitions[config.partition]``) of ``labels``' ids."""
    partitions = spec.require("partitions", "medseq federate")
    if config.partition not in partitions:
        raise ValueError(
            f"[federated] partition {config.partition!r} is not one of dataset "
            f"{spec.name!r}'s partitions {sorted(partitions)}"
        )
    assignment = partitions[config.partition](
        data, labels, n_sites=config.n_sites, alpha=config.dirichlet_alpha, seed=config.seed
    )
    part = SitePartition.from_assignment(assignment, by=config.partition, n_total=len(labels))
    part = part.without_empty()
    if part.dropped:
        logger.warning("partition %r of %s left out: %s", config.partition, spec.name, part.dropped)
    if config.max_subjects_per_site is not None:
        keep = {k: v[: config.max_subjects_per_site] for k, v in part.sites.items()}
        part = SitePartition(keep, by=part.by, dropped=part.dropped)
    return part


def _strata(y: Labels) -> np.ndarray:
    """What a site's local split is stratified on: classes with two or more members (rarer
    ones pooled, as a small label-skewed site may hold one sample of a class)."""
    if isinstance(y, pd.DataFrame):
        return np.zeros(len(y), dtype=np.int64)
    values = y.to_numpy()
    uniques, counts = np.unique(values, return_counts=True)
    if len(uniques) > 20:  # a continuous label: the splitter bins it itself
        return values
    rare = np.isin(values, uniques[counts < 2])
    out = np.where(rare, -1, values)
    if 0 < rare.sum() < 2:  # a pool of one: join it to the largest class
        out = np.where(rare, uniques[np.argmax(counts)], out)
    return out


def local_split(
    ids: np.ndarray, y: Labels, config: FederatedConfig
) -> tuple[np.ndarray, np.ndarray]:
    """A site's stratified train/validation split of its own ids."""
    from medseq.tasks.splits import stratified_split

    target = _strata(y)
    return stratified_split(ids, target, val_fraction=config.val_fraction, random_state=config.seed)


def cut_site(
    data: Any, name: str, ids: np.ndarray, labels: Labels, config: FederatedConfig
) -> Site:
    """Site ``name``: its ``ids`` of a read set, split into local train and validation."""
    y = labels.loc[np.asarray(ids, dtype=np.int64)]
    train_ids, val_ids = local_split(np.asarray(ids, dtype=np.int64), y, config)
    return Site(name, data, np.asarray(train_ids, np.int64), np.asarray(val_ids, np.int64), y)


@functools.lru_cache(maxsize=4)
def _read(dataset: str, task: str, path: str) -> tuple[Any, Labels]:
    from medseq.experiment.data import resolve_data_path

    spec = get_dataset(dataset)
    data = spec.read(resolve_data_path(path))
    return data, spec.labels(task, data)


def read_set(experiment: FederatedExperiment, path: str) -> tuple[Any, Labels]:
    """The experiment's dataset at ``path`` (under the data root, or absolute) and its task
    labels, read once per process."""
    return _read(experiment.dataset, experiment.task, str(path))


@functools.lru_cache(maxsize=8)
def _load_site(key: str) -> Site:
    spec_key = json.loads(key)
    fed = FederatedConfig.from_dict(spec_key["federated"])
    dataset, task = spec_key["dataset"], spec_key["task"]
    data, labels = _read(dataset, task, spec_key["train"])
    part = make_partition(get_dataset(dataset), data, labels, fed)
    index = spec_key["site"]
    if not 0 <= index < len(part.sites):
        raise ValueError(
            f"--site must be in [0, {len(part.sites)}), got {index}: sites {part.names}"
        )
    name = part.names[index]
    return cut_site(data, name, part.sites[name], labels, fed)


def _key(experiment: FederatedExperiment) -> dict[str, Any]:
    return {
        "dataset": experiment.dataset,
        "task": experiment.task,
        "train": experiment.train,
        "federated": experiment.federated.to_dict(),
    }


def load_site(experiment: FederatedExperiment, index: int) -> Site:
    """Site ``index`` (in partition order) of the experiment's training set."""
    return _load_site(json.dumps({**_key(experiment), "site": index}, sort_keys=True))


def partition_of(experiment: FederatedExperiment) -> SitePartition:
    """The experiment's partition of its training set."""
    data, labels = read_set(experiment, experiment.train)
    return make_partition(get_dataset(experiment.dataset), data, labels, experiment.federated)


def n_sites(experiment: FederatedExperiment) -> int:
    """How many sites the experiment's partition makes."""
    return len(partition_of(experiment).sites)
