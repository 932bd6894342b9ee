"""Federated learning across sites with Flower, and per-site differential privacy with Opacus.

Importing this package does not import Flower, Ray or Opacus (``pip install
'medseq[federated]'``); the functions that need them import them when called.

* :mod:`.partition`: sites by a static column (ICU type), by set, IID or Dirichlet non-IID.
* :mod:`.statistics`: one featurizer fitted from per-site aggregates (no pooled rows).
* :mod:`.client` / :mod:`.server`: the Flower site client and strategy (FedAvg, FedProx).
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
