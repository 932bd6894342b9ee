"""AdrenalMNIST3D volumes as a :class:`~medseq.datasets.registry.DatasetSpec`.

Task ``adrenal``: binary (normal gland vs adrenal mass). Each volume is read as a sequence of
slices (:class:`~medseq.features.images.volumes.VolumeFeaturizer`) for
:class:`~medseq.models.slice_rnn.SliceRNN`. Protocol ``official``: MedMNIST's patient-level
train/val/test parts, all from the one ``.npz`` (a folder path reads the 28³ file; name the
``adrenalmnist3d_64.npz`` file for 64³); with ``[data] cv_folds`` the train and val parts
are pooled into stratified folds, one ensemble member per fold and seed.

``[features]`` keys: ``axis``, ``scale`` (the featurizer's), ``augment`` (bool, default
false), ``flip_p``, ``max_shift`` and ``permute_p``
(:class:`~medseq.features.images.volumes.VolumeFlipShift`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medseq.datasets.registry import DatasetSpec, SplitIds
from medseq.features.images.volumes import VolumeFeaturizer, VolumeFlipShift
from medseq.schema import check_known_keys
from medseq.serving.requests import LazyBody
from medseq.sources import medmnist3d

FEATURIZER_KEYS = ("axis", "scale")
AUGMENT_KEYS = ("augment", "flip_p", "max_shift", "permute_p")


def _read(path: Path) -> medmnist3d.VolumeSet:
    if Path(path).is_file():
        return medmnist3d.read(path)
    return medmnist3d.read(path, name="adrenalmnist3d", size=28)


def _labels(task: str, data: medmnist3d.VolumeSet) -> pd.Series:
    if task != "adrenal":
        raise ValueError(f"unknown AdrenalMNIST3D task {task!r}; supported: ['adrenal']")
    if data.labels.max() > 1:
        raise ValueError(f"{data.path}: labels go up to {data.labels.max()}, not binary")
    return data.labels


def _fit(features: dict[str, Any], data: medmnist3d.VolumeSet, ids: np.ndarray):
    check_known_keys("[features] (adrenalmnist3d)", features, FEATURIZER_KEYS + AUGMENT_KEYS)
    options = {k: v for k, v in features.items() if k in FEATURIZER_KEYS}
    return VolumeFeaturizer(**options).fit(data.images[ids])


def _transform(featurizer: VolumeFeaturizer, data: medmnist3d.VolumeSet, ids: np.ndarray):
    return featurizer.transform(data.images[np.asarray(ids, dtype=np.int64)])


def _sizes(featurizer: VolumeFeaturizer) -> dict[str, int]:
    return {"slice_size": featurizer.slice_size}


def _official(spec: Any, data: medmnist3d.VolumeSet, labels: pd.Series) -> SplitIds:
    """MedMNIST's train/val/test parts; with ``[data] cv_folds >= 2`` train and val are
    pooled into that many stratified folds (the test part never moves), so model choice
    rests on ~1,300 out-of-fold predictions instead of the 98 official validation volumes."""
    keep = labels.index.to_numpy()
    parts = [np.intersect1d(data.ids(p), keep) for p in medmnist3d.SPLITS]
    empty = [name for name, part in zip(medmnist3d.SPLITS, parts, strict=True) if not part.size]
    if empty:
        raise ValueError(
            f"{data.path}: the official {empty} part(s) hold no labelled sample; "
            "[data] max_subjects keeps the lowest ids, which are all in 'train'"
        )
    if getattr(spec, "cv_folds", 0) >= 2:  # spec: the [data] table (ExperimentData)
        from medseq.tasks.splits import stratified_kfold

        pool = np.concatenate(parts[:2])
        y = labels.loc[pool].to_numpy()
        folds = stratified_kfold(pool, y, n_splits=spec.cv_folds, random_state=spec.split_seed)
        return SplitIds(folds=folds, test=parts[2])
    return SplitIds(folds=[(parts[0], parts[1])], test=parts[2])


def _augment(features: dict[str, Any], featurizer: VolumeFeaturizer) -> Any:
    if not features.get("augment", False):
        return None
    return VolumeFlipShift(
        flip_p=float(features.get("flip_p", 0.5)),
        max_shift=int(features.get("max_shift", 2)),
        permute_p=float(features.get("permute_p", 0.0)),
    )


def _metrics(task: str, y: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """MedMNIST's accuracy: the share right at the fixed threshold 0.5 (its benchmark's
    ACC), reported beside the accuracy at the threshold chosen on validation."""
    return {"accuracy_at_0.5": float(np.mean((np.asarray(prob) >= 0.5) == (np.asarray(y) == 1)))}


def _dirichlet(data: Any, labels: pd.Series, *, n_sites: int, alpha: float, seed: int):
    """Label skew: normal glands and masses spread over ``n_sites`` by Dirichlet(``alpha``)
    shares. Simulated sites: MedMNIST keeps no hospital of origin (each volume is one
    patient, so no patient is split)."""
    from medseq.datasets import partitions

    return partitions.dirichlet(data, labels, n_sites=n_sites, alpha=alpha, seed=seed)


def _iid(data: Any, labels: pd.Series, *, n_sites: int, alpha: float, seed: int):
    """Random, near-equal shares of the volumes (simulated sites, as :func:`_dirichlet`)."""
    from medseq.datasets import partitions

    return partitions.iid(labels.index.to_numpy(), n_sites, seed)


def _federated_fit(features: dict[str, Any]) -> Any:
    """The volume featurizer fitted across sites: only the slice shape is learned."""
    from medseq.features.images.federated import VolumeFederatedFit

    check_known_keys("[features] (adrenalmnist3d)", features, FEATURIZER_KEYS + AUGMENT_KEYS)
    options = {k: v for k, v in features.items() if k in FEATURIZER_KEYS}
    return VolumeFederatedFit(lambda: VolumeFeaturizer(**options), _site_volumes)


def _site_volumes(data: medmnist3d.VolumeSet, ids: np.ndarray) -> np.ndarray:
    return data.images[np.asarray(ids, dtype=np.int64)]


#: Stages that make no sense for image volumes, and why.
UNSUPPORTED = {
    "POST /v1/predict with a FHIR Bundle": (
        "a volume is sent as nested arrays; FHIR ImagingStudy references DICOM, which "
        "medseq does not read"
    ),
    "streaming": (
        "a CT volume is acquired and read whole; its slices are a spatial sequence, not "
        "observations arriving over time"
    ),
}

VOLUME_EXAMPLE = {"volumes": [{"id": "scan-1", "voxels": [[[0] * 28] * 28] * 28}]}


ADRENALMNIST3D = DatasetSpec(
    name="adrenalmnist3d",
    tasks={"adrenal": "binary"},
    read=_read,
    labels=_labels,
    fit_featurizer=_fit,
    transform=_transform,
    model_sizes=_sizes,
    protocols={"official": _official},
    metrics=_metrics,
    augment=_augment,
    request=LazyBody(
        "medseq.datasets.adrenalmnist3d_serving:parse", "volume", VOLUME_EXAMPLE
    ),
    partitions={"dirichlet": _dirichlet, "iid": _iid},
    federated_fit=_federated_fit,
    unsupported=UNSUPPORTED,
)
