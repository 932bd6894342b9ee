"""The [federated] section: shipped configs parse, mistakes name their section."""

from __future__ import annotations

from pathlib import Path

import pytest

from medseq.federated import load_federated, parse_federated

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


@pytest.mark.parametrize("name", ["federated", "federated_fedprox", "federated_dp"])
def test_shipped_configs_parse(name):
    experiment = load_federated(CONFIGS / f"{name}.toml")
    assert experiment.federated.partition_column == "ICUType"
    assert (experiment.federated.privacy is not None) == (name == "federated_dp")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"federated": {"round": 3}}, r"\[federated\].*round"),
        ({"federated": {"privacy": {"epsilon": 1}}}, r"\[federated.privacy\].*epsilon"),
        ({"federated": {"privacy": {"target_epsilon": 0}}}, "target_epsilon must be > 0"),
        ({"federated": {"min_fit_clients": 0}}, "min_fit_clients must be >= 1"),
        ({"data": {"task": "length_of_stay"}}, "support 'mortality'"),
        (
            {"federated": {"strategy": "fedprox", "privacy": {"target_epsilon": 2.0}}},
            "not supported",
        ),
    ],
)
def test_mistakes_are_named(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_federated(raw)
