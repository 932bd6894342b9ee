"""`medseq federate` on the eICU demo (dataset "flat_events"): hospitals as federated sites.

On real eICU stays read through a small mapping (a few tables, so the test stays quick):
the ``group`` partition keeps every hospital whole at one site and never places a stay of
the held-out hospitals (protocol ``group``'s test part); the visit vocabulary fitted across
the sites from their summed code counts equals the one fitted on the union of their
training stays; a federated run without ``code_prefixes`` or with a time grid is refused
with a sentence; and a tiny Flower simulation through the CLI (config task in the file,
three sites, two rounds) scores the held-out hospitals only and saves a bundle that carries
the task definition.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from eicu_small_mapping import MAPPING, TASK
from medseq.cli import app
from medseq.datasets.flat_tables import subject_groups
from medseq.datasets.registry import get_dataset
from medseq.federated import parse_federated
from medseq.federated.sites import load_site, n_sites, protocol_test_ids, read_set
from medseq.paths import dataset_dir

runner = CliRunner()

FEATURES = {"code_prefixes": ["eicu.", "ICU_ADMISSION/"], "min_count": 3}


@pytest.fixture(scope="module")
def mapping_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("eicu_fed_map") / "eicu.toml"
    path.write_text(MAPPING.format(root=dataset_dir("eicu_demo")))
    return path


def _experiment(mapping_file: Path, features: dict | None = None, **federated) -> object:
    return parse_federated(
        {
            "data": {
                "dataset": "flat_events",
                "task": "eicu_fed_mortality",
                "train": str(mapping_file),
                "protocol": "group",
            },
            "task": TASK,
            "features": features if features is not None else FEATURES,
            "federated": {"partition": "group", "n_sites": 3, "rounds": 2, **federated},
        }
    )


def test_sites_hold_whole_hospitals_none_held_out_and_fit_the_pooled_vocabulary(mapping_file):
    experiment = _experiment(mapping_file)
    spec = get_dataset("flat_events")
    data, labels = read_set(experiment, experiment.train)
    test = protocol_test_ids(experiment)
    sites = [load_site(experiment, k) for k in range(n_sites(experiment))]
    assert [s.name for s in sites] == ["site_0", "site_1", "site_2"]
    hospitals = []
    for site in sites:
        ids = np.concatenate([site.train_ids, site.val_ids])
        hospitals.append(set(subject_groups(data, ids).tolist()))
        assert not set(ids.tolist()) & set(test.tolist())
    for a in range(3):
        for b in range(a + 1, 3):
            assert not hospitals[a] & hospitals[b]
    test_hospitals = set(subject_groups(data, test).tolist())
    assert not test_hospitals & set().union(*hospitals)
    placed = sum(len(s.train_ids) + len(s.val_ids) for s in sites)
    assert placed + len(test) == len(labels)  # every stay is at one site or held out
    sizes = [len(s.train_ids) + len(s.val_ids) for s in sites]
    assert max(sizes) - min(sizes) < 0.2 * max(sizes)  # balanced by the largest-first rule

    union = np.sort(np.concatenate([s.train_ids for s in sites]))
    federated = spec.federated_fit(experiment.features).fit([(s.data, s.train_ids) for s in sites])
    pooled = spec.fit_featurizer(experiment.features, data, union)
    assert federated.state_dict() == pooled.state_dict()
    alone = spec.fit_featurizer(experiment.features, data, sites[0].train_ids)
    assert len(alone.vocabulary_) < len(federated.vocabulary_)  # codes only the union has


def test_a_federated_fit_needs_code_prefixes_and_refuses_the_grid(mapping_file):
    spec = get_dataset("flat_events")
    with pytest.raises(ValueError, match="code_prefixes is required"):
        spec.federated_fit({"min_count": 3})
    with pytest.raises(ValueError, match="has no federated fit"):
        spec.federated_fit({"kind": "grid"})


def test_a_partition_without_groups_says_what_is_missing(tmp_path):
    mapping = tmp_path / "nogroups.toml"
    text = MAPPING.format(root=dataset_dir("eicu_demo")).replace(
        '[groups]\ncode_prefix = "HOSPITAL/"\n', ""
    )
    mapping.write_text(text)
    experiment = parse_federated(
        {
            "data": {"dataset": "flat_events", "task": "eicu_fed_nogroups", "train": str(mapping)},
            "task": TASK,
            "features": FEATURES,
            "federated": {"partition": "group", "n_sites": 3},
        }
    )
    with pytest.raises(ValueError, match=r"\[groups\] code_prefix"):
        load_site(experiment, 0)


@pytest.mark.slow
def test_a_tiny_federated_run_scores_the_held_out_hospitals(mapping_file, tmp_path):
    pytest.importorskip("ray", reason="Flower's simulation engine needs medseq[federated]")
    config = tmp_path / "fed.toml"
    config.write_text(
        f"""
name = "eicu-tiny"
output_dir = "{tmp_path / "run"}"
[data]
dataset = "flat_events"
task = "eicu_fed_tiny"
train = "{mapping_file}"
protocol = "group"
[task.prediction_time]
anchor = ["ICU_ADMISSION/*"]
offset_hours = 24
[task.cohort]
exclude_codes = ["HOSPITAL_DISCHARGE/*"]
[task.label]
codes = ["HOSPITAL_DISCHARGE/Expired"]
within_hours = 87660
censored = "negative"
[features]
code_prefixes = ["eicu.", "ICU_ADMISSION/"]
min_count = 3
[model]
kind = "doctorai"
embedding_size = 8
hidden_size = 8
[train]
lr = 3e-3
batch_size = 32
[federated]
partition = "group"
n_sites = 3
rounds = 2
min_fit_clients = 3
"""
    )
    result = runner.invoke(app, ["federate", "simulate", str(config)])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert all(r["n_failures"] == 0 for r in saved["history"]), saved["history"]
    assert 0.0 <= saved["test_auroc"] <= 1.0
    manifest = json.loads((Path(saved["bundle_dir"]) / "medseq.json").read_text())
    provenance = manifest["provenance"]
    assert provenance["split"]["protocol"] == "group"
    assert provenance["federated"]["partition"] == "group"
    assert provenance["task_definition"]["label"]["codes"] == ["HOSPITAL_DISCHARGE/Expired"]
    assert len(provenance["federated"]["sites"]) == 3
    # the threshold is chosen on the sites' validation scores, as the runner's: at 0.5 this
    # model of a rare outcome calls every stay negative
    assert saved["threshold"] is not None and 0.0 < saved["threshold"] < 0.5
    assert manifest["threshold"] == saved["threshold"]
    # `medseq evaluate` on the training file scores the held-out hospitals only, with the
    # run's own test AUROC (the bundle carries the task definition: nothing to register)
    from medseq.bundle import load_bundle
    from medseq.experiment.evaluation_set import evaluation_set

    scored = runner.invoke(
        app, ["evaluate", saved["bundle_dir"], "--data", str(mapping_file), "--n-boot", "20"]
    )
    assert scored.exit_code == 0, scored.output
    chosen = evaluation_set(load_bundle(saved["bundle_dir"]), str(mapping_file))
    assert chosen.protocol_test
    experiment = _experiment(mapping_file, partition="group", n_sites=3)
    held_out = protocol_test_ids(experiment)
    assert sorted(chosen.labels.index.tolist()) == sorted(held_out.tolist())
    line = next(r for r in scored.output.splitlines() if r.startswith("| auroc"))
    assert float(line.split("|")[2]) == pytest.approx(saved["test_auroc"], abs=5e-4)
    predicted = tmp_path / "pred.csv"
    done = runner.invoke(
        app, ["predict", saved["bundle_dir"], "--data", str(mapping_file), "-o", str(predicted)]
    )
    assert done.exit_code == 0, done.output
    risk = pd.read_csv(predicted)["risk"].to_numpy()
    assert (risk < 0.5).all()  # the old default: nobody flagged
    assert 0 < (risk >= saved["threshold"]).sum() < len(risk)  # the chosen one flags some
