"""Synthea FHIR R4 patients for the config-task tests (real records, read once per session)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

N_BUNDLES = 80


@pytest.fixture(scope="session")
def synthea_folder(tmp_path_factory) -> Path:
    """The first N_BUNDLES patient Bundles of ``synthea_r4.tar.xz``, unpacked (do not modify)."""
    from medseq.paths import dataset_dir

    out = tmp_path_factory.mktemp("synthea_tasks")
    n = 0
    with tarfile.open(dataset_dir("synthea_r4") / "synthea_r4.tar.xz", "r:xz") as tar:
        for member in tar:
            name = Path(member.name).name
            if member.isfile() and name.endswith(".json") and "Information" not in name:
                handle = tar.extractfile(member)
                assert handle is not None
                (out / name).write_bytes(handle.read())
                n += 1
                if n == N_BUNDLES:
                    break
    return out


@pytest.fixture(scope="session")
def synthea(synthea_folder):
    """Those Bundles read into the event table (shared: tests must not modify it)."""
    from medseq.sources import fhir_r4

    return fhir_r4.read(synthea_folder, on_bad_entry="raise")
