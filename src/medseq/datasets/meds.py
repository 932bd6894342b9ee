"""A MEDS folder (data/*.parquet, metadata/) as a history dataset: ``dataset = "meds"``.

Tasks, features and the split protocol are those of :mod:`medseq.datasets.histories`.
"""

from __future__ import annotations

from pathlib import Path

from medseq.datasets.histories import HistoryData, history_spec


def _read(path: Path) -> HistoryData:
    from medseq.sources import meds

    return HistoryData(meds.read(path))


MEDS = history_spec("meds", _read)
