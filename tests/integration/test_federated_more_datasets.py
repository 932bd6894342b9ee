"""`medseq federate` on MIT-BIH, AdrenalMNIST3D and MIMIC-III / MEDS (real data, small runs).

For each dataset: its spec's partitions keep a patient (a record, a subject) at one site and
never place a sample of the protocol's test part; the featurizer fitted across the sites from
their aggregates equals the one fitted on the union of their training samples; and a tiny
Flower simulation through the CLI (two sites, two or three rounds) trains a global model
whose test metric, on the protocol's held-out test part, is above chance (MIT-BIH,
AdrenalMNIST3D). The MIMIC-III demo (89 stays) is too small for any model to beat chance
reliably, pooled or federated (configs/mimic3-retain.toml); its run checks the plumbing:
the held-out subjects are scored and the bundle evaluates on them alone.
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
from medseq.federated.sites import load_site, n_sites, partition_of, protocol_test_ids

runner = CliRunner()

#: DS1 records (116 and 201 are de Chazal's validation records) and DS2 records.
MITBIH_DS1 = ("101", "106", "116", "118", "119", "201", "209")
MITBIH_DS2 = ("100", "213")


@pytest.fixture(scope="module")
def mitbih_folder(tmp_path_factory) -> Path:
    """A WFDB folder with a few DS1 and DS2 records, its RECORDS file listing them."""
    from medseq.paths import dataset_dir

    folder = tmp_path_factory.mktemp("mitdb_small")
    for record in MITBIH_DS1 + MITBIH_DS2:
        for path in dataset_dir("mitdb_full").glob(f"{record}.*"):
            (folder / path.name).symlink_to(path)
    (folder / "RECORDS").write_text("\n".join(MITBIH_DS1 + MITBIH_DS2) + "\n")
    return folder


def _experiment(dataset: str, task: str, train: str, protocol: str, **federated) -> object:
    return parse_federated(
        {
            "data": {"dataset": dataset, "task": task, "train": train, "protocol": protocol},
            "federated": {"rounds": 2, **federated},
        }
    )


def _sites_and_pooled(experiment, features: dict):
    """The federated featurizer over the experiment's sites and the pooled fit on the union
    of their training ids."""
    spec = get_dataset(experiment.dataset)
    sites = [load_site(experiment, k) for k in range(n_sites(experiment))]
    union = np.sort(np.concatenate([s.train_ids for s in sites]))
    federated = spec.federated_fit(features).fit([(s.data, s.train_ids) for s in sites])
    return sites, federated, spec.fit_featurizer(features, sites[0].data, union)


# -- partitions and featurizer statistics -----------------------------------------------------
def test_mitbih_sites_hold_whole_ds1_records_and_fit_the_pooled_beat_statistics(mitbih_folder):
    experiment = _experiment(
        "mitbih", "beat", str(mitbih_folder), "de_chazal", partition="records", n_sites=2
    )
    test = protocol_test_ids(experiment)
    assert sorted({str(r) for r in np.unique(test // 100_000)}) == sorted(MITBIH_DS2)
    part = partition_of(experiment)
    records = [set((ids // 100_000).tolist()) for ids in part.sites.values()]
    assert not records[0] & records[1]  # a record (a patient) is at one site only
    assert set().union(*records) == {int(r) for r in MITBIH_DS1}
    features = {"context_beats": 4}
    sites, federated, pooled = _sites_and_pooled(experiment, features)
    for site in sites:  # local validation takes whole records too
        assert not set(site.train_ids // 100_000) & set(site.val_ids // 100_000)
    np.testing.assert_allclose(federated.mean, pooled.mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(federated.std, pooled.std, rtol=1e-4, atol=1e-5)
    assert federated.state_dict().keys() == pooled.state_dict().keys()


def test_adrenal_sites_leave_the_official_test_part_out_and_agree_on_the_slice_shape():
    experiment = _experiment(
        "adrenalmnist3d", "adrenal", "adrenalmnist3d", "official", partition="dirichlet"
    )
    test = protocol_test_ids(experiment)
    sites, federated, pooled = _sites_and_pooled(experiment, {"axis": 1})
    data = sites[0].data
    assert np.array_equal(test, np.sort(data.ids("test")))
    placed = np.concatenate([np.concatenate([s.train_ids, s.val_ids]) for s in sites])
    assert not np.intersect1d(placed, test).size
    assert len(placed) == len(data.ids("train")) + len(data.ids("val"))
    positive = [float(s.labels.mean()) for s in sites]
    assert max(positive) - min(positive) > 0.2  # label skew: the sites' case mix differs
    assert federated.state_dict() == pooled.state_dict()


@pytest.fixture(scope="module")
def meds_folder(tmp_path_factory) -> Path:
    from medseq.paths import dataset_dir
    from medseq.sources import meds, mimic3

    return meds.write(mimic3.read(dataset_dir("mimic3demo")), tmp_path_factory.mktemp("meds"))


@pytest.mark.parametrize("task", ["mortality", "next_visit_chapter"])
@pytest.mark.parametrize("partition", ["iid", "dirichlet"])
def test_history_sites_keep_each_subject_whole_and_fit_the_pooled_vocabulary(task, partition):
    experiment = _experiment(
        "mimic3",
        task,
        "mimic3demo",
        "subject",
        partition=partition,
        n_sites=2,
        dirichlet_alpha=1.0,
    )
    test = protocol_test_ids(experiment)
    features = {"level": "three_digit", "min_count": 2}
    sites, federated, pooled = _sites_and_pooled(experiment, features)
    subject = {"mortality": 1, "next_visit_chapter": 1000}[task]
    owners = [set(np.concatenate([s.train_ids, s.val_ids]) // subject) for s in sites]
    assert not owners[0] & owners[1]
    assert not (owners[0] | owners[1]) & set(test // subject)
    for site in sites:
        assert not set(site.train_ids // subject) & set(site.val_ids // subject)
    assert federated.state_dict() == pooled.state_dict()
    alone = get_dataset("mimic3").fit_featurizer(features, sites[0].data, sites[0].train_ids)
    assert len(alone.vocabulary_) < len(federated.vocabulary_)  # codes only the union has


def test_meds_gives_the_same_sites_and_vocabulary_as_the_mimic_tables(meds_folder):
    features = {"level": "three_digit", "min_count": 2}
    results = []
    for dataset, train in (("mimic3", "mimic3demo"), ("meds", str(meds_folder))):
        experiment = _experiment(dataset, "mortality", train, "subject", partition="iid")
        sites, federated, _ = _sites_and_pooled(experiment, features)
        results.append(([s.train_ids.tolist() for s in sites], federated.state_dict()))
    assert results[0] == results[1]


def test_a_history_multilabel_task_is_refused_with_a_sentence():
    experiment = _experiment("mimic3", "next_visit_chapter", "mimic3demo", "", partition="iid")
    from medseq.federated.client import class_names

    with pytest.raises(ValueError, match="federated runs on history datasets take task"):
        class_names(experiment)


def test_a_protocol_and_a_test_path_together_are_refused():
    with pytest.raises(ValueError, match="remove \\[data\\] test"):
        parse_federated(
            {
                "data": {
                    "dataset": "mitbih",
                    "task": "beat",
                    "train": "mitdb_full",
                    "test": "mitdb_full",
                    "protocol": "de_chazal",
                },
                "federated": {"partition": "records"},
            }
        )


# -- end to end through the CLI ---------------------------------------------------------------
def _simulate(tmp_path: Path, body: str) -> dict:
    pytest.importorskip("ray", reason="Flower's simulation engine needs medseq[federated]")
    config = tmp_path / "fed.toml"
    config.write_text(f'output_dir = "{tmp_path / "run"}"\n{body}')
    result = runner.invoke(app, ["federate", "simulate", str(config)])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert all(r["n_failures"] == 0 for r in saved["history"]), saved["history"]
    return saved


def _evaluated_ids(bundle_dir: str, path: str) -> set[int]:
    """The samples `medseq evaluate BUNDLE --data PATH` scores: on the training file of a
    protocol run, the protocol's test part only."""
    from medseq.bundle import load_bundle
    from medseq.experiment.evaluation_set import evaluation_set

    chosen = evaluation_set(load_bundle(bundle_dir), path)
    assert chosen.protocol_test
    return set(chosen.labels.index.tolist())


@pytest.mark.slow
def test_mitbih_federated_run_beats_chance_on_ds2_and_the_bundle_evaluates(mitbih_folder, tmp_path):
    saved = _simulate(
        tmp_path,
        f"""
name = "mitbih-tiny"
[data]
dataset = "mitbih"
task = "beat"
train = "{mitbih_folder}"
protocol = "de_chazal"
[features]
context_beats = 4
[model]
kind = "conv_rnn"
conv_channels = []
conv_strides = []
hidden_size = 16
pooling = "last"
[train]
lr = 3e-3
batch_size = 256
[federated]
partition = "records"
n_sites = 2
rounds = 2
min_fit_clients = 2
""",
    )
    assert sorted(saved["sites"]) == ["site_0", "site_1"]
    assert saved["test_auroc"] > 0.6  # mean one-vs-rest AUROC over DS2's classes
    scored = runner.invoke(
        app, ["evaluate", saved["bundle_dir"], "--data", str(mitbih_folder), "--n-boot", "20"]
    )
    assert scored.exit_code == 0, scored.output
    assert "se_V" in scored.output  # the dataset's own metrics, from its spec
    assert _evaluated_ids(saved["bundle_dir"], str(mitbih_folder)) == set(
        protocol_test_ids(
            _experiment(
                "mitbih", "beat", str(mitbih_folder), "de_chazal", partition="records", n_sites=2
            )
        ).tolist()
    )


@pytest.mark.slow
def test_adrenal_federated_run_beats_chance_on_the_official_test_part(tmp_path):
    saved = _simulate(
        tmp_path,
        """
name = "adrenal-tiny"
[data]
dataset = "adrenalmnist3d"
task = "adrenal"
train = "adrenalmnist3d/adrenalmnist3d.npz"
protocol = "official"
[model]
kind = "slice_rnn"
channels = [4, 8]
slice_embedding_size = 16
hidden_size = 8
[train]
lr = 3e-3
batch_size = 32
[federated]
partition = "iid"
n_sites = 2
rounds = 3
max_subjects_per_site = 200
min_fit_clients = 2
""",
    )
    assert saved["test_auroc"] > 0.6  # 298 official test volumes, never at a site
    manifest = json.loads((Path(saved["bundle_dir"]) / "medseq.json").read_text())
    assert manifest["provenance"]["split"]["protocol"] == "official"
    assert manifest["provenance"]["federated"]["partition"] == "iid"


@pytest.mark.slow
def test_mimic3_federated_run_scores_the_held_out_subjects_only(tmp_path):
    saved = _simulate(
        tmp_path,
        """
name = "mimic3-tiny"
[data]
dataset = "mimic3"
task = "mortality"
train = "mimic3demo"
protocol = "subject"
[features]
level = "three_digit"
min_count = 2
[model]
kind = "retain"
embedding_size = 8
alpha_hidden_size = 8
beta_hidden_size = 8
[train]
lr = 3e-3
batch_size = 16
[federated]
partition = "iid"
n_sites = 2
rounds = 2
min_fit_clients = 2
""",
    )
    assert 0.0 <= saved["test_auroc"] <= 1.0
    scored = runner.invoke(app, ["evaluate", saved["bundle_dir"], "--data", "mimic3demo"])
    assert scored.exit_code == 0, scored.output
    experiment = _experiment("mimic3", "mortality", "mimic3demo", "subject", partition="iid")
    held_out = set(protocol_test_ids(experiment).tolist())
    assert _evaluated_ids(saved["bundle_dir"], "mimic3demo") == held_out
