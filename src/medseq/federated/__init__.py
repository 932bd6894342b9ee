"""Federated learning across sites with Flower, and per-site differential privacy with Opacus.

Importing this package does not import Flower, Ray or Opacus (``pip install
'medseq[federated]'``); the functions that need them import them when called.

Any registered dataset whose spec names ``partitions`` and a ``federated_fit`` runs here;
nothing in this package names a dataset, a task, a model kind or a featurizer class.

* :mod:`.sites`: the sites of the spec's named partition, each with its local split.
* :mod:`.partition`: :class:`SitePartition`, and direct partitions (column, set, IID, Dirichlet).
* :mod:`.client` / :mod:`.server`: the Flower site client and strategy (FedAvg, FedProx);
  the featurizer is fitted from per-site aggregates first (:mod:`medseq.features.federated`).
* :mod:`.local`: one site's featurising, training and scoring, for any task type.
* :mod:`.privacy`: DP-SGD with Opacus' DP recurrent layers, epsilon accounting.
* :mod:`.simulation`: run in Flower's simulation engine, or as a site process.
"""

from medseq.federated.config import (
    FederatedConfig,
    FederatedExperiment,
    PrivacyConfig,
    load_federated,
    parse_federated,
)
from medseq.federated.partition import (
    SitePartition,
    partition_by_column,
    partition_dirichlet,
    partition_iid,
    partition_sets,
)

__all__ = [
    "FederatedConfig",
    "FederatedExperiment",
    "PrivacyConfig",
    "SitePartition",
    "load_federated",
    "parse_federated",
    "partition_by_column",
    "partition_dirichlet",
    "partition_iid",
    "partition_sets",
]
