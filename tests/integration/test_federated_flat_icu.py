"""`medseq federate` on dataset "flat_icu": real PhysioNet 2012 stays as flat CSVs whose static
table carries a site column (the ICU type, four units, named by the mapping's ``[groups]``).

The "group" partition keeps each unit whole at one site; without a ``[groups]`` table it is
refused with a sentence; the featurizer fitted across the sites from their aggregates
equals the one fitted on the union of their training stays, static columns included (the
mapping's, as the pooled fit takes them); and a tiny Flower simulation through the CLI (two
sites, two rounds) trains a global model and scores the set-B test mapping.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medseq.cli import app
from medseq.datasets.registry import get_dataset
from medseq.federated import parse_federated
from medseq.federated.sites import load_site, n_sites, partition_of
from physionet2012_flat import FEATURES, export, read_stays

runner = CliRunner()
GROUPS = '[groups]\ncolumn = "ICUType"\n'


@pytest.fixture(scope="module")
def mappings(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(train mapping with [groups], the same without, test mapping): 300 stays of set A,
    100 of set B."""
    root = tmp_path_factory.mktemp("flat_icu_fed")
    set_a = read_stays("a", 300, root / "set-a")
    train = export(set_a, root / "train", GROUPS)
    plain = export(set_a, root / "plain")
    test = export(read_stays("b", 100, root / "set-b"), root / "test", GROUPS)
    return train, plain, test


def _experiment(train: Path, partition: str = "group", n: int = 2):
    return parse_federated(
        {
            "data": {"dataset": "flat_icu", "task": "label", "train": str(train)},
            "features": FEATURES,
            "federated": {"rounds": 2, "partition": partition, "n_sites": n},
        }
    )


def test_group_sites_hold_whole_units_and_fit_the_pooled_featurizer(mappings):
    train, _, _ = mappings
    experiment = _experiment(train)
    part = partition_of(experiment)
    data = get_dataset("flat_icu").read(train)
    units = [set(data.static.loc[ids, "ICUType"].tolist()) for ids in part.sites.values()]
    assert len(units) == 2 and not units[0] & units[1]  # a unit is at one site only
    assert units[0] | units[1] == {1.0, 2.0, 3.0, 4.0}
    spec = get_dataset("flat_icu")
    sites = [load_site(experiment, k) for k in range(n_sites(experiment))]
    union = np.sort(np.concatenate([s.train_ids for s in sites]))
    # without quantile clipping the merged state is exact (count-weighted bounds are not)
    features = {"static_summary": True, "delta_scale": "horizon", "clip_quantiles": None}
    federated = spec.federated_fit(features).fit([(s.data, s.train_ids) for s in sites])
    assert federated.static_encoder_.columns == list(data.static.columns)
    pooled = spec.fit_featurizer(
        {**features, "variables": federated.feature_names_}, sites[0].data, union
    )
    got = spec.transform(federated, data, union[:50])
    expected = spec.transform(pooled, data, union[:50])
    for key in ("values", "static"):  # the series and the mapping's static columns alike
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-5, err_msg=key)


def test_group_partition_without_a_groups_table_is_refused(mappings):
    _, plain, _ = mappings
    with pytest.raises(ValueError, match="needs a \\[groups\\] column"):
        partition_of(_experiment(plain))
    assert len(partition_of(_experiment(plain, "iid")).sites) == 2


def test_a_groups_column_not_in_the_static_table_is_named(mappings, tmp_path):
    from medseq.schema import DataError

    train, _, _ = mappings
    bad = tmp_path / "bad.toml"
    bad.write_text(train.read_text().replace('column = "ICUType"', 'column = "Hospital"'))
    with pytest.raises(DataError, match=r"'Hospital' is not in static\.csv"):
        get_dataset("flat_icu").read(bad)


@pytest.mark.slow
def test_flat_icu_federated_simulation_runs_and_scores_the_test_mapping(mappings, tmp_path):
    pytest.importorskip("ray", reason="Flower's simulation engine needs medseq[federated]")
    train, _, test = mappings
    config = tmp_path / "fed.toml"
    config.write_text(
        f"""output_dir = "{tmp_path / "run"}"
name = "flat-icu-tiny"
[data]
dataset = "flat_icu"
task = "label"
train = "{train}"
test = "{test}"
[features]
log_variables = "auto"
delta_scale = "horizon"
static_summary = true
[model]
cell = "gru"
hidden_size = 8
pooling = "mean"
input_delta = true
[train]
lr = 3e-3
batch_size = 64
[federated]
partition = "group"
n_sites = 2
rounds = 2
min_fit_clients = 2
"""
    )
    result = runner.invoke(app, ["federate", "simulate", str(config)])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert all(r["n_failures"] == 0 for r in saved["history"]), saved["history"]
    assert sorted(saved["sites"]) == ["site_0", "site_1"]
    assert 0.0 <= saved["test_auroc"] <= 1.0  # 100 test stays: scored, not judged
