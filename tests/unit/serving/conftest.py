"""Fixtures of the serving tests: set B of PhysioNet 2012 and the trained fixture bundles."""

from __future__ import annotations

import warnings

import pytest


@pytest.fixture(scope="session")
def setb(physionet2012_dir):
    """The real test set (4000 stays); each test takes a slice of it."""
    from medseq.sources import physionet2012

    return physionet2012.read(physionet2012_dir / "set-b.tar.gz")


@pytest.fixture(scope="session")
def gru_bundle(trained_gru_bundle):
    from medseq.bundle import load_bundle

    return load_bundle(trained_gru_bundle)


@pytest.fixture(scope="session")
def grud_bundle(trained_grud_bundle):
    from medseq.bundle import load_bundle

    return load_bundle(trained_grud_bundle)


@pytest.fixture(scope="session")
def test_client_cls():
    """fastapi's TestClient (imported quietly: starlette warns about plain httpx)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    return TestClient


@pytest.fixture(scope="session")
def trained_beat_bundle(tmp_path_factory):
    """A MIT-BIH beat bundle from ``configs/mitbih-beats.toml`` (DS1 only, as the config
    says; one seed and three epochs to keep the tests short): the signal streams' model."""
    from dataclasses import replace
    from pathlib import Path

    from medseq.experiment import load_config, run_experiment

    config_path = Path(__file__).resolve().parents[3] / "configs" / "mitbih-beats.toml"
    config = load_config(config_path, ["train.epochs=3"])
    out = tmp_path_factory.mktemp("beat-bundle")
    config = replace(config, seeds=(0,), output_dir=str(out))
    return Path(run_experiment(config, progress=False).bundle_dir)
