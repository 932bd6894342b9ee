"""PhysioNet 2012 ICU stays as a :class:`~medseq.datasets.registry.DatasetSpec`.

The data object is the reader's :class:`~medseq.sources.physionet2012.PhysioNet2012Set`
(event table, static descriptors, outcomes); the featurizer is
:class:`~medseq.features.ICUFeaturizer`, whose ``[features]`` table is its keyword
arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medseq.datasets import partitions
from medseq.datasets.registry import DatasetSpec
from medseq.features import ICUFeaturizer
from medseq.sources import physionet2012
from medseq.tasks.physionet2012 import (
    LOS_CLASS_NAMES,
    OUTCOME_LABELS,
    length_of_stay_class_labels,
    length_of_stay_labels,
    mortality_labels,
    outcome_labels,
)

LABELLERS = {
    "mortality": mortality_labels,
    "length_of_stay": length_of_stay_labels,
    "length_of_stay_class": length_of_stay_class_labels,
    "outcomes": outcome_labels,
}
CLASS_NAMES = {"length_of_stay_class": LOS_CLASS_NAMES, "outcomes": OUTCOME_LABELS}
#: Site names of PhysioNet 2012's ICUType codes (the Challenge's own labels).
ICU_TYPE_NAMES: dict[int, str] = {
    1: "coronary_care",
    2: "cardiac_surgery",
    3: "medical",
    4: "surgical",
}


def _read(path: Path) -> physionet2012.PhysioNet2012Set:
    return physionet2012.read(path)


def _labels(task: str, data: physionet2012.PhysioNet2012Set) -> pd.Series:
    if task not in LABELLERS:
        raise ValueError(f"unknown task {task!r}; supported: {sorted(LABELLERS)}")
    return LABELLERS[task](data)


def _fit(features: dict[str, Any], data, ids: np.ndarray) -> ICUFeaturizer:
    return ICUFeaturizer(**features).fit(data.events, data.static, ids)


def _transform(featurizer: ICUFeaturizer, data, ids: np.ndarray) -> dict[str, np.ndarray]:
    return featurizer.transform(data.events, data.static, ids)


def _class_names(task: str, data) -> list[str]:
    return list(CLASS_NAMES.get(task, ()))


def _sizes(featurizer: ICUFeaturizer) -> dict[str, int]:
    return {"input_size": featurizer.n_features, "static_size": featurizer.n_static}


def _icu_type(data, labels, *, n_sites: int, alpha: float, seed: int) -> pd.Series:
    """The four ICU types as four "hospitals" (case mix and mortality differ)."""
    values = data.static["ICUType"].reindex(labels.index)
    return partitions.by_column(values, ICU_TYPE_NAMES)


def _iid(data, labels, *, n_sites: int, alpha: float, seed: int) -> pd.Series:
    return partitions.iid(labels.index.to_numpy(), n_sites, seed)


def _federated_fit(features: dict[str, Any]) -> Any:
    from medseq.features.icu.federated import ICUFederatedFit

    return ICUFederatedFit(features, lambda data, ids: (data.events, data.static))


PHYSIONET2012 = DatasetSpec(
    name="physionet2012",
    tasks={
        "mortality": "binary",
        "length_of_stay": "regression",
        "length_of_stay_class": "multiclass",
        "outcomes": "multilabel",
    },
    read=_read,
    labels=_labels,
    fit_featurizer=_fit,
    transform=_transform,
    model_sizes=_sizes,
    class_names=_class_names,
    partitions={"icu_type": _icu_type, "dirichlet": partitions.dirichlet, "iid": _iid},
    federated_fit=_federated_fit,
)
