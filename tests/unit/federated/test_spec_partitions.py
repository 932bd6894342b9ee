"""The dataset specs' federated partitions on real labels: disjoint, complete, skewed or whole."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medseq.datasets import partitions
from medseq.federated.partition import SitePartition


def _check_complete(site_of: pd.Series, ids) -> SitePartition:
    part = SitePartition.from_assignment(site_of, by="test", n_total=len(ids))
    every = np.concatenate(list(part.sites.values()))
    assert len(every) == len(np.unique(every)) == len(ids)  # every sample in one site
    return part


def test_physionet2012_icu_type_partition_is_the_four_units_in_code_order(set_a):
    from medseq.datasets.physionet2012 import ICU_TYPE_NAMES, PHYSIONET2012
    from medseq.tasks.physionet2012 import mortality_labels

    labels = mortality_labels(set_a)
    site_of = PHYSIONET2012.partitions["icu_type"](set_a, labels, n_sites=4, alpha=0.5, seed=0)
    part = _check_complete(site_of, labels.index)
    assert part.names == [ICU_TYPE_NAMES[k] for k in (1, 2, 3, 4)]
    for code, name in ICU_TYPE_NAMES.items():
        assert (set_a.static.loc[part.sites[name], "ICUType"] == code).all()


def test_cinc2017_dirichlet_skews_the_rhythm_classes():
    from medseq.datasets.cinc2017 import CINC2017
    from medseq.paths import dataset_dir
    from medseq.sources.physionet2017 import read_reference

    reference = read_reference(dataset_dir("physionet2017") / "REFERENCE-v3.csv")
    classes = reference.map({"N": 0, "A": 1, "O": 2, "~": 3})
    labels = pd.Series(classes.to_numpy(), index=[int(r[1:]) for r in reference.index])
    site_of = CINC2017.partitions["dirichlet"](None, labels, n_sites=3, alpha=0.3, seed=0)
    part = _check_complete(site_of, labels.index)
    shares = pd.crosstab(site_of.astype(str), labels.reindex(site_of.index), normalize="index")
    assert (shares.max() - shares.min()).max() > 0.2  # class mixes differ between sites
    iid = CINC2017.partitions["iid"](None, labels, n_sites=3, alpha=0.3, seed=0)
    iid_shares = pd.crosstab(iid.astype(str), labels.reindex(iid.index), normalize="index")
    assert (iid_shares.max() - iid_shares.min()).max() < 0.05
    assert part.names == ["site_0", "site_1", "site_2"]


def test_tox21_scaffold_partition_keeps_each_scaffold_at_one_site():
    from medseq.datasets.tox21 import TOX21, Molecules
    from medseq.paths import dataset_dir
    from medseq.sources import tox21
    from medseq.tasks.molecules import murcko_scaffolds

    raw = tox21.read(dataset_dir("tox21") / "tox21.csv.gz")
    labels = raw.labels.iloc[:400]
    data = Molecules(raw=raw, canonical=raw.smiles.iloc[:400])
    site_of = TOX21.partitions["scaffold"](data, labels, n_sites=3, alpha=0.5, seed=0)
    part = _check_complete(site_of, labels.index)
    scaffolds = murcko_scaffolds(raw.smiles.loc[labels.index])
    per_scaffold = pd.Series(site_of.astype(str).to_numpy(), index=site_of.index).groupby(
        scaffolds.reindex(site_of.index)
    )
    assert per_scaffold.nunique().max() == 1  # no scaffold split over sites
    sizes = [len(v) for v in part.sites.values()]
    assert max(sizes) - min(sizes) < 0.2 * len(labels)  # balanced by the greedy fill
    skew = TOX21.partitions["dirichlet"](data, labels, n_sites=3, alpha=0.5, seed=0)
    _check_complete(skew, labels.index)


def test_partition_helpers_refuse_bad_settings():
    labels = pd.Series([0, 1] * 5, index=np.arange(10))
    with pytest.raises(ValueError, match="n_sites must be >= 1"):
        partitions.dirichlet_label_skew(labels, 0, 0.5, 0)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        partitions.dirichlet_label_skew(labels, 2, 0.0, 0)
    with pytest.raises(ValueError, match="3 groups cannot fill 4 sites"):
        partitions.by_group(pd.Series([1, 1, 2, 3], index=np.arange(4)), 4, 0)


def test_grouped_partitions_keep_each_patient_at_one_site():
    """Several samples per patient (visits, beats): every partition keeps a patient whole."""
    rng = np.random.default_rng(0)
    groups = pd.Series(np.repeat(np.arange(40), 3), index=np.arange(120) * 7)
    labels = pd.Series(rng.integers(0, 2, size=120), index=groups.index)
    for site_of in (
        partitions.by_group_iid(groups, 4, seed=1),
        partitions.dirichlet_by_group(labels, groups, 4, alpha=0.3, seed=1),
    ):
        part = _check_complete(site_of, groups.index)
        for ids in part.sites.values():
            owners = set(groups.loc[ids])
            others = set(groups.loc[np.setdiff1d(groups.index, ids)])
            assert not owners & others
    sizes = partitions.by_group_iid(groups, 4, seed=1).value_counts()
    assert sizes.min() == sizes.max() == 30  # ten patients (thirty samples) per site


def test_dirichlet_by_group_skews_the_patients_label_mix():
    rng = np.random.default_rng(0)
    groups = pd.Series(np.arange(400), index=np.arange(400))
    labels = pd.Series(rng.integers(0, 2, size=400), index=groups.index)
    site_of = partitions.dirichlet_by_group(labels, groups, 4, alpha=0.2, seed=0)
    rates = labels.groupby(site_of.astype(str)).mean()
    assert rates.max() - rates.min() > 0.3
    with pytest.raises(ValueError, match="3 groups cannot fill 4 sites"):
        partitions.by_group_iid(pd.Series([1, 1, 2, 3], index=np.arange(4)), 4, 0)
