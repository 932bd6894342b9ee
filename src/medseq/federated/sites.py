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
    ids: np.ndarray, y: Labels, config: FederatedConfig, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A site's stratified train/validation split of its own ids.

    With ``groups`` (the patient or record behind each id, where one patient gives several
    samples) whole groups go to one side, stratified on each group's largest label, so the
    round selection never validates on a patient the site trains on.
    """
    from medseq.tasks.splits import stratified_split

    ids = np.asarray(ids, dtype=np.int64)
    if groups is None or len(np.unique(groups)) == len(ids):
        return stratified_split(
            ids, _strata(y), val_fraction=config.val_fraction, random_state=config.seed
        )
    groups = np.asarray(groups)
    target = y.max(axis=1) if isinstance(y, pd.DataFrame) else y
    per_group = pd.Series(target.to_numpy(), index=groups).groupby(level=0).max()
    names = per_group.index.to_numpy()
    if len(names) < 2:
        raise ValueError(
            f"a site holds the samples of {len(names)} patient(s) or record(s), too few to "
            "keep one for validation; lower [federated] n_sites"
        )
    strata = _strata(per_group)
    n_val = int(np.ceil(config.val_fraction * len(names)))
    if min(n_val, len(names) - n_val) < len(np.unique(strata)):  # too few groups to stratify
        strata = np.zeros(len(names), dtype=np.int64)
    train_groups, _ = stratified_split(
        names, strata, val_fraction=config.val_fraction, random_state=config.seed
    )
    in_train = np.isin(groups, train_groups)
    return ids[in_train], ids[~in_train]


def cut_site(
    data: Any,
    name: str,
    ids: np.ndarray,
    labels: Labels,
    config: FederatedConfig,
    groups: np.ndarray | None = None,
) -> Site:
    """Site ``name``: its ``ids`` of a read set, split into local train and validation
    (whole ``groups`` to one side when given: see :func:`local_split`)."""
    y = labels.loc[np.asarray(ids, dtype=np.int64)]
    train_ids, val_ids = local_split(np.asarray(ids, dtype=np.int64), y, config, groups)
    return Site(name, data, np.asarray(train_ids, np.int64), np.asarray(val_ids, np.int64), y)


def site_groups(spec: DatasetSpec, task: str, data: Any, ids: np.ndarray) -> np.ndarray | None:
    """The patient behind each of ``ids`` (``spec.groups``), or None where every sample is
    its own patient."""
    if spec.groups is None:
        return None
    return np.asarray(spec.groups(task, data, np.asarray(ids, dtype=np.int64)))


@functools.lru_cache(maxsize=4)
def _read(dataset: str, task: str, path: str) -> tuple[Any, Labels]:
    from medseq.experiment.data import resolve_data_path

    spec = get_dataset(dataset)
    data = spec.read(resolve_data_path(path))
    return data, spec.labels(task, data)


def protocol_data(experiment: FederatedExperiment) -> Any:
    """The ``[data]`` table (:class:`~medseq.experiment.config.ExperimentData`) that the
    dataset's split protocol reads: the experiment's set, task and protocol, the split seed
    being ``[federated] seed``."""
    from medseq.experiment.config import ExperimentData

    return ExperimentData(
        dataset=experiment.dataset,
        train=experiment.train,
        test="",
        task=experiment.task,
        val_fraction=experiment.federated.val_fraction,
        split_seed=experiment.federated.seed,
        protocol=experiment.protocol,
    )


def _experiment(spec_key: dict[str, Any]) -> FederatedExperiment:
    """The experiment a cache key (:func:`_key`) was made from; the key, not the
    experiment, is hashable, which is what the caches below need."""
    return FederatedExperiment(
        name="",
        dataset=spec_key["dataset"],
        task=spec_key["task"],
        train=spec_key["train"],
        protocol=spec_key["protocol"],
        federated=FederatedConfig.from_dict(spec_key["federated"]),
        task_table=spec_key.get("task_table", {}),
    )


@functools.lru_cache(maxsize=4)
def _protocol_test(key: str) -> np.ndarray:
    experiment = _experiment(json.loads(key))
    data, labels = read_set(experiment, experiment.train)
    split = get_dataset(experiment.dataset).protocol(experiment.protocol)(
        protocol_data(experiment), data, labels
    )
    if split.test is None or not len(split.test):
        raise ValueError(
            f"[data] protocol {experiment.protocol!r} of dataset {experiment.dataset!r} sets "
            "no test part; name a separate [data] test instead"
        )
    return np.sort(np.asarray(split.test, dtype=np.int64))


def protocol_test_ids(experiment: FederatedExperiment) -> np.ndarray:
    """The test ids of the experiment's ``[data] protocol`` (held out of every site);
    empty without a protocol."""
    if not experiment.protocol:
        return np.zeros(0, dtype=np.int64)
    return _protocol_test(json.dumps(_key(experiment), sort_keys=True))


def read_set(experiment: FederatedExperiment, path: str) -> tuple[Any, Labels]:
    """The experiment's dataset at ``path`` (under the data root, or absolute) and its task
    labels, read once per process. A config task (``[task]`` table) is registered first:
    a site process has not parsed the experiment file."""
    experiment.register_task()
    return _read(experiment.dataset, experiment.task, str(path))


def site_pool(experiment: FederatedExperiment) -> tuple[Any, Labels]:
    """The training set and the labels the sites are drawn from: every labelled sample, or,
    under a ``[data] protocol``, all but the protocol's test part."""
    data, labels = read_set(experiment, experiment.train)
    test = protocol_test_ids(experiment)
    if test.size:
        labels = labels.loc[~labels.index.isin(test)]
    return data, labels


@functools.lru_cache(maxsize=8)
def _load_site(key: str) -> Site:
    spec_key = json.loads(key)
    index = spec_key.pop("site")
    experiment = _experiment(spec_key)
    spec = get_dataset(experiment.dataset)
    data, labels = site_pool(experiment)
    part = make_partition(spec, data, labels, experiment.federated)
    if not 0 <= index < len(part.sites):
        raise ValueError(
            f"--site must be in [0, {len(part.sites)}), got {index}: sites {part.names}"
        )
    name = part.names[index]
    ids = part.sites[name]
    groups = site_groups(spec, experiment.task, data, ids)
    return cut_site(data, name, ids, labels, experiment.federated, groups)


def _key(experiment: FederatedExperiment) -> dict[str, Any]:
    return {
        "dataset": experiment.dataset,
        "task": experiment.task,
        "train": experiment.train,
        "protocol": experiment.protocol,
        "federated": _drop_none(experiment.federated.to_dict()),
        **({"task_table": experiment.task_table} if experiment.task_table else {}),
    }


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _drop_none(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}


def load_site(experiment: FederatedExperiment, index: int) -> Site:
    """Site ``index`` (in partition order) of the experiment's training set."""
    return _load_site(json.dumps({**_key(experiment), "site": index}, sort_keys=True))


def partition_of(experiment: FederatedExperiment) -> SitePartition:
    """The experiment's partition of its training set (its protocol's test part left out)."""
    data, labels = site_pool(experiment)
    return make_partition(get_dataset(experiment.dataset), data, labels, experiment.federated)


def n_sites(experiment: FederatedExperiment) -> int:
    """How many sites the experiment's partition makes."""
    return len(partition_of(experiment).sites)
