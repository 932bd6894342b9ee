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
