"""Each site's own data: its subjects' events, descriptors, labels and local split.

A site process (or a simulated site) calls :func:`load_site` and gets only its partition; the
set is read from the data root and cut to the site's subjects at once. Results are cached per
process, so a simulated site that is rebuilt every round does not read the set again.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medseq.federated.config import FederatedConfig, FederatedExperiment
from medseq.federated.partition import (
    SitePartition,
    partition_by_column,
    partition_dirichlet,
    partition_iid,
)
from medseq.federated.statistics import SiteRaw


@dataclass(frozen=True)
class Site:
    """One site's data. ``raw.train_ids`` and ``val_ids`` split its subjects, stratified."""

    name: str
    raw: SiteRaw
    val_ids: np.ndarray
    labels: pd.Series

    @property
    def train_ids(self) -> np.ndarray:
        return self.raw.train_ids

    @property
    def n_train(self) -> int:
        return len(self.raw.train_ids)


def make_partition(
    static: pd.DataFrame, labels: pd.Series, config: FederatedConfig
) -> SitePartition:
    """The configured partition of a set's subjects."""
    if config.partition == "column":
        part = partition_by_column(static, config.partition_column)
    elif config.partition == "iid":
        part = partition_iid(labels.index.to_numpy(), config.n_sites, random_state=config.seed)
    else:
        part = partition_dirichlet(
            labels, config.n_sites, alpha=config.dirichlet_alpha, random_state=config.seed
        )
    if config.max_subjects_per_site is not None:
        keep = {k: v[: config.max_subjects_per_site] for k, v in part.sites.items()}
        part = SitePartition(keep, by=part.by, dropped=part.dropped)
    return part


def cut_site(
    data: Any, name: str, ids: np.ndarray, labels: pd.Series, config: FederatedConfig
) -> Site:
    """Keep only ``ids`` of a read set and split them into local train and validation."""
    from medseq.tasks.splits import stratified_split

    y = labels.reindex(ids)
    train_ids, val_ids = stratified_split(
        ids, y.to_numpy(), val_fraction=config.val_fraction, random_state=config.seed
    )
    events = data.events[data.events["subject_id"].isin(ids)].reset_index(drop=True)
    static = data.static.loc[ids]
    return Site(name, SiteRaw(events, static, np.asarray(train_ids, np.int64)), val_ids, y)


@functools.lru_cache(maxsize=4)
def _read(path: str) -> Any:
    from medseq.paths import data_root
    from medseq.sources import physionet2012

    full = Path(path) if Path(path).is_absolute() else data_root() / path
    return physionet2012.read(full)


def read_set(path: str) -> Any:
    """A PhysioNet 2012 set (path under the data root, or absolute), read once per process."""
    return _read(str(path))


def site_labels(data: Any) -> pd.Series:
    from medseq.tasks.physionet2012 import mortality_labels

    return mortality_labels(data)


@functools.lru_cache(maxsize=8)
def _load_site(key: str) -> Site:
    spec = json.loads(key)
    fed = FederatedConfig.from_dict(spec["federated"])
    data = read_set(spec["train"])
    labels = site_labels(data)
    part = make_partition(data.static, labels, fed)
    index = spec["site"]
    if not 0 <= index < len(part.sites):
        raise ValueError(
            f"--site must be in [0, {len(part.sites)}), got {index}: sites {part.names}"
        )
    name = part.names[index]
    return cut_site(data, name, part.sites[name], labels, fed)


def load_site(experiment: FederatedExperiment, index: int) -> Site:
    """Site ``index`` (in partition order) of the experiment's training set."""
    key = {"train": experiment.train, "federated": experiment.federated.to_dict(), "site": index}
    return _load_site(json.dumps(key, sort_keys=True))


def n_sites(experiment: FederatedExperiment) -> int:
    """How many sites the experiment's partition makes."""
    data = read_set(experiment.train)
    return len(make_partition(data.static, site_labels(data), experiment.federated).sites)
