"""Ways to split a dataset into federated "sites", for the specs' ``partitions`` part.

A partition is a callable a :class:`~medseq.datasets.registry.DatasetSpec` lists under a
name (``[federated] partition = "dirichlet"``)::

    partition(data, labels, *, n_sites, alpha, seed) -> pd.Series

It returns the site name of every sample it places, indexed by sample id (int64); a sample
it leaves out (e.g. no value in the partition column) is simply absent, and the caller
counts it. When the Series is categorical, its categories give the site order (site 0
first); otherwise sites are sorted by name. ``n_sites``, ``alpha`` and ``seed`` come from
the ``[federated]`` table; a partition by a real column ignores them.

Federated learning is only meaningful when sites differ, so the helpers here are the
usual kinds of difference: a real column (PhysioNet 2012's ICU type: four units whose case
mix and mortality differ), groups kept whole (a molecule scaffold, a block of records), or
label skew (each class spread over the sites by Dirichlet(``alpha``) shares, Hsu et al.
2019, "Measuring the effects of non-identical data distribution"). They depend on numpy
and pandas only: the federated stage that calls them is elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd


def _sites(assignment: dict[int, str] | pd.Series, order: Sequence[str]) -> pd.Series:
    series = pd.Series(assignment) if isinstance(assignment, dict) else assignment
    series.index = pd.Index(np.asarray(series.index, dtype=np.int64), name="subject_id")
    return pd.Series(pd.Categorical(series.to_numpy(), categories=list(order)), series.index)


def by_column(values: pd.Series, names: Mapping[Any, str] | None = None) -> pd.Series:
    """One site per distinct value of ``values`` (indexed by sample id); NaN left out.

    Sites are ordered by value; ``names`` maps a value to its site name (default
    ``"<column>=<value>"``).
    """
    if not isinstance(values, pd.Series):
        raise TypeError(f"by_column needs a pandas Series, got {type(values).__name__}")
    values = values.dropna()
    order, named = [], {}
    for value in sorted(values.unique()):
        key = int(value) if isinstance(value, float) and float(value).is_integer() else value
        name = (names or {}).get(key, f"{values.name}={value}")
        order.append(name)
        named[value] = name
    return _sites(values.map(named), order)


def dirichlet_label_skew(labels: pd.Series, n_sites: int, alpha: float, seed: int) -> pd.Series:
    """Label-skewed sites: each class is spread over the sites by Dirichlet(``alpha``) shares.

    Small ``alpha`` (0.1) gives sites dominated by one class; large (100) is near IID. The
    draw (permutation, then shares, class by class in sorted order) is the one
    :func:`medseq.federated.partition.partition_dirichlet` has always made, so published
    site splits do not move.
    """
    if n_sites < 1:
        raise ValueError(f"n_sites must be >= 1, got {n_sites}")
    if not alpha > 0:
        raise ValueError(f"dirichlet alpha must be > 0, got {alpha}")
    if not isinstance(labels, pd.Series):
        raise TypeError(
            "dirichlet_label_skew needs one label per sample (a Series); reduce a multilabel "
            f"frame to one class first, got {type(labels).__name__}"
        )
    labels = labels.dropna()
    rng = np.random.default_rng(seed)
    site_of: dict[int, str] = {}
    for cls in sorted(labels.unique()):
        ids = rng.permutation(labels.index[labels == cls].to_numpy(dtype=np.int64))
        shares = rng.dirichlet(np.full(n_sites, alpha))
        cuts = (np.cumsum(shares)[:-1] * len(ids)).astype(int)
        for k, part in enumerate(np.split(ids, cuts)):
            site_of.update(dict.fromkeys(part.tolist(), f"site_{k}"))
    return _sites(site_of, [f"site_{k}" for k in range(n_sites)])


def iid(ids: np.ndarray, n_sites: int, seed: int) -> pd.Series:
    """Random, near-equal shares: the IID control of a non-IID experiment."""
    if n_sites < 1:
        raise ValueError(f"n_sites must be >= 1, got {n_sites}")
    shuffled = np.random.default_rng(seed).permutation(np.asarray(ids, np.int64))
    site_of = {
        int(i): f"site_{k}"
        for k, part in enumerate(np.array_split(shuffled, n_sites))
        for i in part
    }
    return _sites(site_of, [f"site_{k}" for k in range(n_sites)])


def by_group(groups: pd.Series, n_sites: int, seed: int) -> pd.Series:
    """Whole groups (a scaffold, a record block) to sites, balancing the sites' sizes.

    Groups are taken largest first (ties in a seeded random order) and each goes to the
    site with the fewest samples so far, so no group is split and the sites end up of
    similar size while holding different groups.
    """
    if n_sites < 1:
        raise ValueError(f"n_sites must be >= 1, got {n_sites}")
    sizes = groups.value_counts()
    if len(sizes) < n_sites:
        raise ValueError(f"{len(sizes)} groups cannot fill {n_sites} sites; lower n_sites")
    rng = np.random.default_rng(seed)
    names = sizes.index.to_numpy()[rng.permutation(len(sizes))]
    ordered = sorted(names, key=lambda g: -int(sizes[g]))  # stable: ties keep the shuffle
    load = np.zeros(n_sites, dtype=np.int64)
    site_of_group = {}
    for group in ordered:
        k = int(np.argmin(load))
        site_of_group[group] = f"site_{k}"
        load[k] += int(sizes[group])
    return _sites(groups.map(site_of_group), [f"site_{k}" for k in range(n_sites)])


def skew_target(labels: pd.Series | pd.DataFrame) -> pd.Series:
    """The one class per sample that label skew spreads: the label itself, or for a
    multilabel frame whether any label is positive (missing labels count as negative)."""
    if isinstance(labels, pd.DataFrame):
        return (labels.fillna(0) > 0).any(axis=1).astype(np.int64)
    return labels


def dirichlet(
    data: object, labels: pd.Series | pd.DataFrame, *, n_sites: int, alpha: float, seed: int
) -> pd.Series:
    """The ``dirichlet`` partition of any spec: label skew over :func:`skew_target`."""
    return dirichlet_label_skew(skew_target(labels), n_sites, alpha, seed)


def by_group_iid(groups: pd.Series, n_sites: int, seed: int) -> pd.Series:
    """Whole groups (a patient's admissions, a record's beats) in random, near-equal shares
    of groups: the IID control when several samples belong to one patient, who must stay at
    one site. ``groups`` gives the group of every sample id."""
    names = np.unique(groups.to_numpy())
    if len(names) < n_sites:
        raise ValueError(f"{len(names)} groups cannot fill {n_sites} sites; lower n_sites")
    shuffled = np.random.default_rng(seed).permutation(names)
    site_of_group = {
        g: f"site_{k}" for k, part in enumerate(np.array_split(shuffled, n_sites)) for g in part
    }
    return _sites(groups.map(site_of_group), [f"site_{k}" for k in range(n_sites)])


def dirichlet_by_group(
    labels: pd.Series | pd.DataFrame, groups: pd.Series, n_sites: int, alpha: float, seed: int
) -> pd.Series:
    """Label skew over whole groups: each group (patient) takes the largest
    :func:`skew_target` of its samples, the groups are spread by
    :func:`dirichlet_label_skew`, and every sample follows its group."""
    target = skew_target(labels)
    per_group = target.groupby(groups.reindex(target.index).to_numpy()).max()
    site_of_group = dirichlet_label_skew(per_group, n_sites, alpha, seed)
    order = list(site_of_group.cat.categories)
    lookup = dict(zip(site_of_group.index.tolist(), site_of_group.astype(str), strict=True))
    return _sites(groups.map(lookup).dropna(), order)
