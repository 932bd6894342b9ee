"""Shared test fixtures. Real data comes from ``$MEDSEQ_DATA`` or ``../shared/data``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from data_slices import unpack_synthea
from small_runs import SMALL_LOS, SMALL_RUN, train_small

torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _private_peak_cache(tmp_path_factory):
    """Detected R peaks go to a folder of this test run, not the user's ~/.cache."""
    patch = pytest.MonkeyPatch()
    patch.setenv("MEDSEQ_CACHE", str(tmp_path_factory.mktemp("medseq-cache")))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def physionet2012_dir():
    from medseq.paths import dataset_dir

    return dataset_dir("physionet2012")


@pytest.fixture(scope="session")
def synthea_bundles(tmp_path_factory) -> Path:
    """The first four patient Bundles of the Synthea FHIR R4 archive, unpacked (do not modify).

    Streamed from the front of ``synthea_r4.tar.xz``, so only about 4 MB are decompressed.
    """
    return unpack_synthea(tmp_path_factory.mktemp("synthea_r4"), 4)


@pytest.fixture(scope="session")
def set_a(physionet2012_dir):
    """PhysioNet 2012 set A as read by medseq (shared: tests must not modify it)."""
    from medseq.sources import physionet2012

    return physionet2012.read(physionet2012_dir / "set-a.tar.gz")


@pytest.fixture(scope="session")
def set_b(physionet2012_dir):
    """PhysioNet 2012 set B as read by medseq (shared: tests must not modify it)."""
    from medseq.sources import physionet2012

    return physionet2012.read(physionet2012_dir / "set-b.tar.gz")


@pytest.fixture(scope="session")
def trained_gru_bundle(tmp_path_factory) -> Path:
    """Directory of a bundle holding a GRU (mean pooling, summary fusion) trained on real data."""
    return train_small(tmp_path_factory.mktemp("gru_bundle"), SMALL_RUN["model"])


@pytest.fixture(scope="session")
def trained_grud_bundle(tmp_path_factory) -> Path:
    """Directory of a bundle holding a GRU-D trained on real data."""
    model = {"kind": "grud", "hidden_size": 16, "pooling": "last"}
    return train_small(tmp_path_factory.mktemp("grud_bundle"), model)


@pytest.fixture(scope="session")
def trained_los_bundle(tmp_path_factory) -> Path:
    """Directory of a regression bundle (length of stay, days) trained on real data."""
    return train_small(tmp_path_factory.mktemp("los_bundle"), SMALL_RUN["model"], SMALL_LOS)


@pytest.fixture(scope="session")
def trained_beat_bundle(tmp_path_factory) -> Path:
    """A MIT-BIH beat bundle from ``configs/mitbih-beats.toml`` (DS1 only, as the config
    says; one seed and three epochs to keep the tests short): the signal streams' and the
    monitoring detector's model (shared: tests copy it before changing anything)."""
    from dataclasses import replace

    from medseq.experiment import load_config, run_experiment

    config_path = Path(__file__).resolve().parents[1] / "configs" / "mitbih-beats.toml"
    config = load_config(config_path, ["train.epochs=3"])
    out = tmp_path_factory.mktemp("beat-bundle")
    config = replace(config, seeds=(0,), output_dir=str(out))
    return Path(run_experiment(config, progress=False).bundle_dir)


#: Synthea patients of the config-task tests (tests/unit/tasks, serving a config task).
N_BUNDLES = 80


@pytest.fixture(scope="session")
def synthea_folder(tmp_path_factory) -> Path:
    """The first N_BUNDLES patient Bundles of ``synthea_r4.tar.xz``, unpacked (do not modify)."""
    return unpack_synthea(tmp_path_factory.mktemp("synthea_tasks"), N_BUNDLES)


@pytest.fixture(scope="session")
def synthea(synthea_folder):
    """Those Bundles read into the event table (shared: tests must not modify it)."""
    from medseq.sources import fhir_r4

    return fhir_r4.read(synthea_folder, on_bad_entry="raise")
