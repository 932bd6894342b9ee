"""`medseq federate` on config tasks of Synthea FHIR R4 bundles (``fhir_r4``) and of their
MEDS export (``meds_events``): simulated sites of whole patients.

On 80 real Synthea patients: the ``iid`` and ``dirichlet`` partitions keep every patient,
with all of their prediction times, at one site and never place a patient of the
``subject`` protocol's test part; the visit vocabulary fitted across the sites from their
summed code counts equals the one fitted on the union of their training samples; and a
tiny Flower simulation through the CLI (two sites, one round) saves a bundle that
``medseq evaluate`` scores on the held-out patients with the run's own test AUROC.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from config_tasks import ACUTE_3Y, write_config
from medseq.cli import app
from medseq.datasets.registry import get_dataset
from medseq.federated import parse_federated
from medseq.federated.sites import load_site, n_sites, protocol_test_ids, read_set

runner = CliRunner()

CHECKUP = "http://snomed.info/sct|185349003"  # Synthea's wellness encounter type
#: A prediction time at every adult check-up: several samples per patient.
EVERY_CHECKUP = {
    "prediction_time": {"anchor": [CHECKUP], "occurrence": "every"},
    "cohort": {"min_age_years": 18},
    "label": {"codes": ["ENCOUNTER/EMER", "ENCOUNTER/IMP"], "within_hours": 4383},
    "observation": {"window_hours": 17532},
}
FEATURES = {
    "code_prefixes": ["ENCOUNTER/", "http://snomed.info/sct|", "http://loinc.org|"],
    "min_count": 2,
}


@pytest.fixture(scope="module")
def meds_root(synthea, tmp_path_factory) -> Path:
    """The Synthea patients written as a MEDS folder by the FHIR reader's MEDS export."""
    return Path(synthea.to_meds(tmp_path_factory.mktemp("fed_meds") / "meds"))


def _path(dataset: str, request: pytest.FixtureRequest) -> Path:
    name = "synthea_folder" if dataset == "fhir_r4" else "meds_root"
    return Path(request.getfixturevalue(name))


def _experiment(dataset: str, path: Path, task: str, partition: str) -> object:
    return parse_federated(
        {
            "data": {"dataset": dataset, "task": task, "train": str(path), "protocol": "subject"},
            "task": EVERY_CHECKUP,
            "features": FEATURES,
            "federated": {"partition": partition, "n_sites": 3, "rounds": 1},
        }
    )


@pytest.mark.parametrize(
    ("dataset", "partition"), [("fhir_r4", "iid"), ("meds_events", "dirichlet")]
)
def test_sites_hold_whole_patients_none_held_out_and_fit_the_pooled_vocabulary(
    dataset, partition, request
):
    path = _path(dataset, request)
    experiment = _experiment(dataset, path, f"fed_every_{dataset}", partition)
    spec = get_dataset(dataset)
    data, labels = read_set(experiment, experiment.train)
    subject_of = data.samples["subject_id"]
    assert subject_of.loc[labels.index].duplicated().any()  # several samples per patient
    test = protocol_test_ids(experiment)
    sites = [load_site(experiment, k) for k in range(n_sites(experiment))]
    assert [s.name for s in sites] == ["site_0", "site_1", "site_2"]
    patients = []
    for site in sites:
        ids = np.concatenate([site.train_ids, site.val_ids])
        assert not set(ids.tolist()) & set(test.tolist())
        patients.append(set(subject_of.loc[ids].tolist()))
        # the local validation takes whole patients too
        train_p, val_p = subject_of.loc[site.train_ids], subject_of.loc[site.val_ids]
        assert not set(train_p.tolist()) & set(val_p.tolist())
    for a in range(3):
        for b in range(a + 1, 3):
            assert not patients[a] & patients[b]
    assert not set(subject_of.loc[test].tolist()) & set().union(*patients)
    placed = sum(len(s.train_ids) + len(s.val_ids) for s in sites)
    assert placed + len(test) == len(labels)  # every sample is at one site or held out

    union = np.sort(np.concatenate([s.train_ids for s in sites]))
    federated = spec.federated_fit(experiment.features).fit([(s.data, s.train_ids) for s in sites])
    pooled = spec.fit_featurizer(experiment.features, data, union)
    assert federated.state_dict() == pooled.state_dict()


def test_an_unknown_partition_names_the_ones_there_are(synthea_folder):
    with pytest.raises(ValueError, match=r"partitions \['dirichlet', 'iid'\]"):
        _experiment("fhir_r4", synthea_folder, "fed_every_bad", "hospital")


def _federated_toml(dataset: str, path: Path, out: Path) -> dict:
    return {
        "name": f"{dataset}-fed-tiny",
        "output_dir": str(out),
        "data": {
            "dataset": dataset,
            "task": f"acute_3y_fed_{dataset}",
            "train": str(path),
            "protocol": "subject",
        },
        "task": ACUTE_3Y,
        "features": FEATURES,
        "model": {"kind": "doctorai", "embedding_size": 8, "hidden_size": 8},
        "train": {"lr": 3e-3, "batch_size": 16, "num_threads": 1},
        "federated": {"partition": "iid", "n_sites": 2, "rounds": 1, "min_fit_clients": 2},
    }


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["fhir_r4", "meds_events"])
def test_a_tiny_federated_run_trains_and_its_bundle_evaluates(dataset, request, tmp_path):
    pytest.importorskip("ray", reason="Flower's simulation engine needs medseq[federated]")
    path = _path(dataset, request)
    config = write_config(tmp_path / "fed.toml", _federated_toml(dataset, path, tmp_path / "run"))
    result = runner.invoke(app, ["federate", "simulate", str(config)])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert len(saved["history"]) >= 1
    assert all(r["n_failures"] == 0 for r in saved["history"]), saved["history"]
    assert 0.0 <= saved["test_auroc"] <= 1.0
    manifest = json.loads((Path(saved["bundle_dir"]) / "medseq.json").read_text())
    provenance = manifest["provenance"]
    assert provenance["federated"]["partition"] == "iid"
    assert len(provenance["federated"]["sites"]) == 2
    assert provenance["task_definition"]["label"]["codes"] == ACUTE_3Y["label"]["codes"]
    # `medseq evaluate` on the training set scores the held-out patients, with the run's
    # own test AUROC (the bundle carries the task definition: nothing to register)
    scored = runner.invoke(
        app, ["evaluate", saved["bundle_dir"], "--data", str(path), "--n-boot", "20"]
    )
    assert scored.exit_code == 0, scored.output
    from medseq.bundle import load_bundle
    from medseq.experiment.evaluation_set import evaluation_set

    assert evaluation_set(load_bundle(saved["bundle_dir"]), str(path)).protocol_test
    line = next(r for r in scored.output.splitlines() if r.startswith("| auroc"))
    assert float(line.split("|")[2]) == pytest.approx(saved["test_auroc"], abs=5e-4)
