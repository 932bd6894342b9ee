"""Tox21 molecules as a :class:`~medseq.datasets.registry.DatasetSpec`.

Task ``toxicity``: 12 assays, multilabel with missing labels (NaN, left out of the loss and
of each assay's ROC-AUC). Molecules are read as RDKit-canonical SMILES token sequences
(:class:`~medseq.features.molecules.smiles.SmilesFeaturizer`); training batches may be re-written as
randomised SMILES of the same molecules (``[features] enumerate = true``). Protocols, both
80/10/10 from the one file: ``random`` (MoleculeNet's, seeded by ``[data] split_seed``) and
``scaffold`` (Bemis–Murcko, largest scaffold groups to train). Needs ``medseq[molecules]``.

``[features]`` keys: ``min_count``, ``max_length``, ``n_enumerations`` (test-time averaging
over that many randomised SMILES per molecule) and ``seed`` (the featurizer's), ``enumerate``
(bool, default false: training augmentation) and ``enumerate_p`` (share of training rows
re-written per batch, default 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medseq.datasets import partitions
from medseq.datasets.registry import DatasetSpec, SplitIds
from medseq.features.molecules.smiles import SmilesFeaturizer
from medseq.schema import check_known_keys
from medseq.serving.requests import LazyBody
from medseq.sources import tox21

AUGMENT_KEYS = ("enumerate", "enumerate_p")
FEATURIZER_KEYS = ("min_count", "max_length", "n_enumerations", "seed")


@dataclass(frozen=True)
class Molecules:
    """The read file (None for a request's molecules) and each molecule's canonical SMILES
    (same index)."""

    raw: tox21.Tox21Data | None
    canonical: pd.Series


def _read(path: Path) -> Molecules:
    from medseq.features.molecules.smiles_enumeration import canonical_smiles

    data = tox21.read(path)
    return Molecules(raw=data, canonical=data.smiles.map(canonical_smiles))


def _file(data: Molecules) -> tox21.Tox21Data:
    if data.raw is None:
        raise ValueError("these molecules come from a request: they have no labels or file")
    return data.raw


def _labels(task: str, data: Molecules) -> pd.DataFrame:
    if task != "toxicity":
        raise ValueError(f"unknown Tox21 task {task!r}; supported: ['toxicity']")
    return _file(data).labels


def _fit(features: dict[str, Any], data: Molecules, ids: np.ndarray) -> SmilesFeaturizer:
    check_known_keys("[features] (tox21)", features, FEATURIZER_KEYS + AUGMENT_KEYS)
    options = {k: v for k, v in features.items() if k in FEATURIZER_KEYS}
    return SmilesFeaturizer(**options).fit(data.canonical.loc[ids])


def _transform(featurizer: SmilesFeaturizer, data: Molecules, ids: np.ndarray) -> dict:
    return featurizer.transform(list(data.canonical.loc[ids]))


def _sizes(featurizer: SmilesFeaturizer) -> dict[str, int]:
    return {"vocab_size": featurizer.vocab_size}


def _class_names(task: str, data: Molecules) -> list[str]:
    return list(tox21.TASKS)


def _random(spec: Any, data: Molecules, labels: pd.DataFrame) -> SplitIds:
    from medseq.tasks.molecules import random_split

    train, val, test = random_split(labels.index.to_numpy(), random_state=spec.split_seed)
    return SplitIds(folds=[(train, val)], test=test)


def _scaffold(spec: Any, data: Molecules, labels: pd.DataFrame) -> SplitIds:
    from medseq.tasks.molecules import scaffold_split

    train, val, test = scaffold_split(_file(data).smiles.loc[labels.index])
    return SplitIds(folds=[(train, val)], test=test)


def _augment(features: dict[str, Any], featurizer: SmilesFeaturizer) -> Any:
    if not features.get("enumerate", False):
        return None
    from medseq.features.molecules.smiles_enumeration import SmilesEnumerationAugment

    return SmilesEnumerationAugment(featurizer, p=float(features.get("enumerate_p", 1.0)))


#: Stages that make no sense for molecules, and why.
UNSUPPORTED = {
    "POST /v1/predict with a FHIR Bundle": (
        "a molecule is a SMILES string; FHIR has no resource for it here"
    ),
    "streaming": (
        "a molecule is one SMILES string known at once, not a sequence of observations "
        "arriving over time"
    ),
}


def _scaffolds(data: Molecules, labels, *, n_sites: int, alpha: float, seed: int) -> pd.Series:
    """Bemis-Murcko scaffold groups kept whole, spread over ``n_sites`` (chemical series
    differ between sites, as between companies' compound libraries)."""
    from medseq.tasks.molecules import murcko_scaffolds

    if data.raw is None:
        raise ValueError("a scaffold partition needs the Tox21 table, not request molecules")
    return partitions.by_group(murcko_scaffolds(data.raw.smiles.loc[labels.index]), n_sites, seed)


def _federated_fit(features: dict[str, Any]) -> Any:
    from medseq.features.molecules.federated import SmilesFederatedFit

    check_known_keys("[features] (tox21)", features, FEATURIZER_KEYS + AUGMENT_KEYS)
    options = {k: v for k, v in features.items() if k in FEATURIZER_KEYS}
    return SmilesFederatedFit(options, lambda data, ids: list(data.canonical.loc[ids]))


SMILES_EXAMPLE = {
    "molecules": [
        {"id": "aspirin", "smiles": "CC(=O)Oc1ccccc1C(=O)O"},
        {"id": "caffeine", "smiles": "Cn1cnc2c1c(=O)n(C)c(=O)n2C"},
    ]
}

TOX21 = DatasetSpec(
    name="tox21",
    tasks={"toxicity": "multilabel"},
    read=_read,
    labels=_labels,
    fit_featurizer=_fit,
    transform=_transform,
    model_sizes=_sizes,
    class_names=_class_names,
    protocols={"random": _random, "scaffold": _scaffold},
    augment=_augment,
    request=LazyBody("medseq.datasets.tox21_serving:parse", "smiles", SMILES_EXAMPLE),
    unsupported=UNSUPPORTED,
    partitions={"dirichlet": partitions.dirichlet, "scaffold": _scaffolds},
    federated_fit=_federated_fit,
)
