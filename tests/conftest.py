"""Shared test fixtures. Real data comes from ``$MEDSEQ_DATA`` or ``../shared/data``."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def physionet2012_dir():
    from medseq.paths import dataset_dir

    return dataset_dir("physionet2012")
