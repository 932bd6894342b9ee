"""MIMIC-III (the demo or the full tables) as a history dataset: ``dataset = "mimic3"``.

Tasks, features and the split protocol are those of :mod:`medseq.datasets.histories`.
"""

from __future__ import annotations

from pathlib import Path

from medseq.datasets.histories import HistoryData, history_spec


def _read(path: Path) -> HistoryData:
    from medseq.sources import mimic3

    return HistoryData(mimic3.read(path))


MIMIC3 = history_spec("mimic3", _read)
