"""The [federated] section: shipped configs parse, mistakes name their section."""

from __future__ import annotations

from pathlib import Path

import pytest

from medseq.federated import load_federated, parse_federated

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


@pytest.mark.parametrize("name", ["federated", "federated_fedprox", "federated_dp"])
def test_shipped_configs_parse(name):
    experiment = load_federated(CONFIGS / f"{name}.toml")
    assert (experiment.dataset, experiment.task) == ("physionet2012", "mortality")
    assert experiment.federated.partition == "icu_type"
    assert (experiment.federated.privacy is not None) == (name == "federated_dp")


DATA = {"dataset": "physionet2012", "task": "mortality", "train": "physionet2012/set-a.tar.gz"}


def _raw(data=None, federated=None):
    return {
        "data": {**DATA, **(data or {})},
        "federated": {"partition": "icu_type", **(federated or {})},
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_raw(federated={"round": 3}), r"\[federated\].*round"),
        (_raw(federated={"privacy": {"epsilon": 1}}), r"\[federated.privacy\].*epsilon"),
        (_raw(federated={"privacy": {"target_epsilon": 0}}), "target_epsilon must be > 0"),
        (_raw(federated={"min_fit_clients": 0}), "min_fit_clients must be >= 1"),
        (_raw(data={"task": "length_of_stay"}), "is a regression task"),
        (_raw(data={"task": "sofa"}), "has no task 'sofa'"),
        (_raw(federated={"partition": "scaffold"}), r"not one of dataset 'physionet2012'"),
        ({"data": {"task": "mortality", "train": "x"}}, r"\[data\] dataset is required"),
        ({"data": DATA}, r"\[federated\] partition is required"),
        (
            _raw(federated={"strategy": "fedprox", "privacy": {"target_epsilon": 2.0}}),
            "not supported",
        ),
        (
            {**_raw(), "train": {"class_weight": "balanced"}},
            r"\[train\] class_weight is not supported",
        ),
    ],
)
def test_mistakes_are_named(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_federated(raw)


@pytest.mark.parametrize(
    ("name", "dataset", "partition"),
    [
        ("federated-cinc2017", "cinc2017", "dirichlet"),
        ("federated-tox21", "tox21", "scaffold"),
        ("federated-mitbih", "mitbih", "records"),
        ("federated-adrenalmnist3d", "adrenalmnist3d", "dirichlet"),
        ("federated-mimic3", "mimic3", "iid"),
    ],
)
def test_shipped_configs_of_other_datasets_parse(name, dataset, partition):
    experiment = load_federated(CONFIGS / f"{name}.toml")
    assert (experiment.dataset, experiment.federated.partition) == (dataset, partition)


def test_a_dataset_without_partitions_is_refused_with_the_specs_sentence():
    from medseq.datasets.registry import StageUnsupported

    raw = {"data": {"dataset": "bonn_eeg", "task": "seizure", "train": "bonn_eeg"}}
    with pytest.raises(StageUnsupported) as err:
        parse_federated({**raw, "federated": {"partition": "dirichlet"}})
    assert str(err.value) == (
        "medseq federate is not available for dataset 'bonn_eeg': the segments carry no "
        "hospital, subject or recording labels to split into sites (N and F are two electrode "
        "sites of the same five patients, not two hospitals)"
    )


def test_a_dataset_with_sites_but_no_federated_fit_is_refused_with_the_matrix_sentence(
    monkeypatch,
):
    """A spec naming sites but no federated featurizer fit (every registered dataset with
    partitions now has one, so the real PhysioNet 2019 spec is stripped of its fit here)."""
    from dataclasses import replace

    from medseq.capabilities import cell
    from medseq.datasets import registry
    from medseq.datasets.registry import StageUnsupported

    real = registry.get_dataset("physionet2019")
    assert real.federated_fit is not None
    stripped = replace(real, federated_fit=None)
    monkeypatch.setattr(registry, "get_dataset", lambda name: stripped)
    raw = {"data": {"dataset": "physionet2019", "task": "sepsis_6h", "train": "physionet2019"}}
    with pytest.raises(StageUnsupported) as err:
        parse_federated({**raw, "federated": {"partition": "hospital"}})
    reason = cell(stripped, "federated").reason
    assert (
        str(err.value) == f"medseq federate is not available for dataset 'physionet2019': {reason}"
    )
    assert "no `federated_fit` part (how to fit the featurizer from per-site statistics)" in reason
