"""Real MIT-BIH records for the monitoring tests, read once per session."""

from __future__ import annotations

import pytest

from medseq.monitoring.records import Record, read_record
from medseq.paths import dataset_dir


@pytest.fixture(scope="session")
def mitdb():
    """Reader of one MIT-BIH record's MLII lead (mV), cached per record."""
    cache: dict[str, Record] = {}

    def read(name: str) -> Record:
        if name not in cache:
            cache[name] = read_record(dataset_dir("mitdb_full") / name, lead="MLII")
        return cache[name]

    return read
