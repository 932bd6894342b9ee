"""Site partitions of real PhysioNet 2012 stays: disjoint, complete, by the right column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medseq.datasets.physionet2012 import ICU_TYPE_NAMES
from medseq.federated import (
    partition_by_column,
    partition_dirichlet,
    partition_iid,
    partition_sets,
)
from medseq.tasks.physionet2012 import mortality_labels


def _all_ids(part) -> np.ndarray:
    return np.concatenate(list(part.sites.values()))


def test_icu_type_sites_are_disjoint_complete_and_pure(set_a):
    part = partition_by_column(set_a.static, "ICUType", names=ICU_TYPE_NAMES)
    assert part.names == [ICU_TYPE_NAMES[k] for k in (1, 2, 3, 4)]
    ids = _all_ids(part)
    assert len(ids) == len(np.unique(ids)) == len(set_a.static)  # no subject in two sites
    for code, name in ICU_TYPE_NAMES.items():
        site_types = set_a.static.loc[part.sites[name], "ICUType"]
        assert (site_types == code).all()
        assert len(part.sites[name]) > 300  # four real hospitals, none nearly empty
    assert part.site_of().loc[part.sites["medical"][0]] == "medical"


def test_missing_partition_values_raise_or_are_counted(set_a):
    static = set_a.static.iloc[:50].copy()
    static.iloc[:3, static.columns.get_loc("ICUType")] = np.nan
    with pytest.raises(ValueError, match="3 subjects have no ICUType"):
        partition_by_column(static, "ICUType")
    part = partition_by_column(static, "ICUType", on_missing="drop")
    assert part.dropped == {"missing:ICUType": 3}
    assert len(_all_ids(part)) == 47
    with pytest.raises(ValueError, match="'Ward' is not in the static table"):
        partition_by_column(static, "Ward")


def test_iid_and_dirichlet_partitions(set_a):
    labels = mortality_labels(set_a)
    iid = partition_iid(labels.index.to_numpy(), 4, random_state=0)
    assert sorted(_all_ids(iid)) == sorted(labels.index)
    assert max(len(v) for v in iid.sites.values()) - min(len(v) for v in iid.sites.values()) <= 1
    skewed = partition_dirichlet(labels, 4, alpha=0.1, random_state=0)
    ids = _all_ids(skewed)
    assert len(ids) == len(np.unique(ids)) == len(labels)
    rates = skewed.summary(labels)["positive_rate"].dropna()
    # label skew: with alpha = 0.1 the sites' death rates spread far beyond IID's
    assert rates.max() - rates.min() > 0.1
    iid_rates = iid.summary(labels)["positive_rate"]
    assert iid_rates.max() - iid_rates.min() < 0.05


def test_partition_sets_refuses_shared_subjects():
    assert partition_sets({"a": np.array([3, 1]), "b": np.array([2])}).sites["a"].tolist() == [1, 3]
    with pytest.raises(ValueError, match="more than one site"):
        partition_sets({"a": np.array([1, 2]), "b": pd.Index([2, 5]).to_numpy()})
