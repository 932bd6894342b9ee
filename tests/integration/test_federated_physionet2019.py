"""`medseq federate` on PhysioNet 2019 (per-hour sepsis labels), on real patients of A and B.

The two hospital systems are the sites. Shown here: the hourly featurizer fitted across the
sites from their aggregates equals the pooled fit where the statistics are exact (no
winsorisation) and is a working featurizer with the default bounds; the held-out patients
(protocol ``hold_out``) are at no site; per-hour scoring treats every labelled hour as a
sample; and a tiny Flower simulation through the CLI selects its round on per-hour
validation AUROC, scores the held-out hours and saves a bundle that `medseq evaluate` reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from data_slices import unpack_physionet2019
from medseq.cli import app
from medseq.datasets import get_dataset
from medseq.federated import local, parse_federated
from medseq.federated.sites import load_site, n_sites, partition_of, protocol_test_ids

runner = CliRunner()
N_PER_SET = 120


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """The first N_PER_SET patients of each system, plus every septic one among the next 400
    (so that each site and the test part hold septic hours)."""
    out = tmp_path_factory.mktemp("sepsis2019_fed")
    return unpack_physionet2019(out, N_PER_SET, scan=N_PER_SET + 400)


def _experiment(root: Path, **federated):
    return parse_federated(
        {
            "data": {
                "dataset": "physionet2019",
                "task": "sepsis_6h",
                "train": str(root),
                "protocol": "hold_out",
            },
            "federated": {"partition": "hospital", "rounds": 2, **federated},
        }
    )


def test_sites_are_the_two_systems_and_the_held_out_patients_are_at_neither(root):
    experiment = _experiment(root)
    part = partition_of(experiment)
    assert list(part.sites) == ["A", "B"]
    test = protocol_test_ids(experiment)
    data = load_site(experiment, 0).data
    systems = data.static["hospital"].reindex(test).astype(str)
    assert set(systems) == {"A", "B"}  # both systems are held out from, not only one
    for ids in part.sites.values():
        assert not np.intersect1d(ids, test).size
    site_systems = [
        set(data.static["hospital"].reindex(ids).astype(str)) for ids in part.sites.values()
    ]
    assert site_systems == [{"A"}, {"B"}]


def test_federated_hourly_featurizer_equals_the_pooled_fit_when_the_statistics_are_exact(root):
    experiment = _experiment(root)
    spec = get_dataset("physionet2019")
    sites = [load_site(experiment, k) for k in range(n_sites(experiment))]
    union = np.sort(np.concatenate([s.train_ids for s in sites]))
    features = {"delta_scale": "horizon", "clip_quantiles": None}  # no site quantiles
    federated = spec.federated_fit(features).fit([(s.data, s.train_ids) for s in sites])
    pooled = spec.fit_featurizer(features, sites[0].data, union)
    assert federated.kind == pooled.kind == "hourly_icu"
    assert federated.channel_names_ == pooled.channel_names_
    fed_norm, pool_norm = federated.grid_.normalizer_, pooled.grid_.normalizer_
    np.testing.assert_allclose(fed_norm.mean_, pool_norm.mean_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(fed_norm.std_, pool_norm.std_, rtol=1e-9, atol=1e-9)
    val = sites[1].val_ids
    a = spec.transform(federated, sites[1].data, val)
    b = spec.transform(pooled, sites[1].data, val)
    np.testing.assert_array_equal(a["lengths"], b["lengths"])
    np.testing.assert_allclose(a["values"], b["values"], atol=1e-5)


def test_federated_hourly_featurizer_with_default_bounds_is_a_working_state(root):
    experiment = _experiment(root)
    spec = get_dataset("physionet2019")
    sites = [load_site(experiment, k) for k in range(n_sites(experiment))]
    fit = spec.federated_fit({"delta_scale": "horizon"})
    featurizer = fit.fit([(s.data, s.train_ids) for s in sites])
    # the state the server sends is the hourly featurizer's, rebuilt by its kind
    from medseq.features.registry import featurizer_from_state_dict

    again = featurizer_from_state_dict(json.loads(json.dumps(featurizer.state_dict())))
    arrays = spec.transform(again, sites[0].data, sites[0].train_ids)
    assert arrays["values"].shape[1:] == (72, featurizer.n_features)
    assert np.isfinite(arrays["values"]).all()
    hours = arrays["lengths"]
    assert (hours >= 1).all() and (hours <= 72).all()


def test_per_hour_scoring_counts_every_labelled_hour_once():
    y = np.array([[0, 0, 1, np.nan], [0, 0, np.nan, np.nan]], dtype=np.float32)
    prob = np.zeros((2, 4, 2))
    prob[..., 1] = [[0.1, 0.2, 0.9, 0.95], [0.3, 0.05, 0.99, 0.99]]
    prob[..., 0] = 1 - prob[..., 1]
    assert local.n_scored(y, "multiclass") == 5
    # hours: negatives 0.1, 0.2, 0.3, 0.05; the one positive 0.9 ranks above all of them
    assert local.mean_auroc(y, prob, "multiclass") == pytest.approx(1.0)
    prob[0, 2, 1], prob[0, 2, 0] = 0.15, 0.85  # now two negatives rank above the positive
    assert local.mean_auroc(y, prob, "multiclass") == pytest.approx(0.5)
    expected = -np.mean(np.log([0.9, 0.8, 0.15, 0.7, 0.95]))
    assert local.log_loss(y, prob, "multiclass") == pytest.approx(expected)
    with pytest.raises(ValueError, match="per-step probabilities"):
        local.mean_auroc(y, prob[..., 1], "multiclass")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_two_system_federated_run_scores_held_out_hours_and_the_bundle_evaluates(root, tmp_path):
    pytest.importorskip("ray", reason="Flower's simulation engine needs medseq[federated]")
    config = tmp_path / "fed.toml"
    config.write_text(
        f"""
name = "sepsis-tiny"
output_dir = "{tmp_path / "run"}"
[data]
dataset = "physionet2019"
task = "sepsis_6h"
train = "{root}"
protocol = "hold_out"
[features]
delta_scale = "horizon"
[model]
kind = "conv_rnn"
conv_channels = []
conv_strides = []
mode = "sequence"
hidden_size = 16
bidirectional = false
[train]
lr = 5e-3
batch_size = 32
[federated]
partition = "hospital"
rounds = 2
min_fit_clients = 2
"""
    )
    result = runner.invoke(app, ["federate", str(config)])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert sorted(saved["sites"]) == ["A", "B"]
    assert saved["best_round"] in (1, 2)
    assert all(np.isfinite(r["val_auroc"]) for r in saved["history"])
    assert 0.0 <= saved["test_auroc"] <= 1.0
    assert set(saved["test_site_auroc"]) <= {"A", "B"}
    figures = saved["test_metrics"]
    assert figures["hourly_auroc"] == pytest.approx(saved["test_auroc"], abs=1e-9)
    assert "utility@0.5" in figures and figures["utility@0.5"] <= 1.0
    scored = runner.invoke(
        app, ["evaluate", saved["bundle_dir"], "--data", str(root), "--n-boot", "10"]
    )
    assert scored.exit_code == 0, scored.output
    assert "hourly_auroc" in scored.output
