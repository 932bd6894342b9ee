"""Datasets: one module per dataset, each defining its :class:`DatasetSpec`, and the registry.

Every stage after training (evaluation, report, explain, serving, export, federated) asks a
bundle's spec for what it needs; no stage outside this package names a dataset. Adding a
dataset means adding its module here, one line in :data:`DATASETS`, a config and tests
(docs/architecture.md walks through it).
"""

from medseq.datasets.registry import DATASETS, DatasetSpec, SplitIds, StageUnsupported, get_dataset

__all__ = ["DATASETS", "DatasetSpec", "SplitIds", "StageUnsupported", "get_dataset"]
