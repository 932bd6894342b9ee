"""Resolve dataset paths and turn a read set into labelled, featurised arrays."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medseq.paths import data_root
from medseq.sources import physionet2012
from medseq.tasks.physionet2012 import length_of_stay_labels, mortality_labels

LABELLERS = {"mortality": mortality_labels, "length_of_stay": length_of_stay_labels}


def resolve_data_path(path: str | Path) -> Path:
    """Absolute paths stay; relative ones are tried from the cwd, then from the data root."""
    path = Path(path).expanduser()
    if path.is_absolute() or path.exists():
        return path
    candidate = data_root() / path
    if not candidate.exists():
        raise FileNotFoundError(f"data path {str(path)!r} not found here nor under {data_root()}")
    return candidate


def read_set(dataset: str, path: str | Path) -> physionet2012.PhysioNet2012Set:
    """Read one dataset split with the reader registered for ``dataset``."""
    if dataset != "physionet2012":
        raise ValueError(f"unknown dataset {dataset!r}; supported: ['physionet2012']")
    return physionet2012.read(resolve_data_path(path))


def labels_for(task: str, data: physionet2012.PhysioNet2012Set) -> pd.Series:
    """Labels of ``task`` indexed by subject_id (subjects without a label are excluded)."""
    if task not in LABELLERS:
        raise ValueError(f"unknown task {task!r}; supported: {sorted(LABELLERS)}")
    return LABELLERS[task](data)


def file_sha256(path: Path) -> str:
    """Hash of a data file (or of a folder's sorted files) for the bundle's provenance."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@dataclass
class LabelledSet:
    """One split: the read data, the ordered subject ids and their labels."""

    data: physionet2012.PhysioNet2012Set
    subject_ids: np.ndarray
    y: np.ndarray

    @classmethod
    def select(cls, data, labels: pd.Series, ids) -> LabelledSet:
        ids = np.asarray(ids, dtype=np.int64)
        return cls(data=data, subject_ids=ids, y=labels.loc[ids].to_numpy(dtype=np.float32))


@dataclass
class Fold:
    """One train/validation partition of the training set (subject-disjoint)."""

    train: LabelledSet
    val: LabelledSet


def make_folds(spec, data, labels: pd.Series) -> list[Fold]:
    """The single stratified split, or ``spec.cv_folds`` stratified folds, of ``labels``."""
    from medseq.tasks.splits import stratified_kfold, stratified_split

    ids, y = labels.index.to_numpy(), labels.to_numpy()
    if spec.cv_folds >= 2:
        pairs = stratified_kfold(ids, y, n_splits=spec.cv_folds, random_state=spec.split_seed)
    else:
        pairs = [
            stratified_split(ids, y, val_fraction=spec.val_fraction, random_state=spec.split_seed)
        ]
    return [
        Fold(LabelledSet.select(data, labels, tr), LabelledSet.select(data, labels, va))
        for tr, va in pairs
    ]
