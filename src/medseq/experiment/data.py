"""Resolve dataset paths, read them through the dataset registry, label and split them."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medseq.datasets.registry import DatasetSpec, SplitIds, get_dataset
from medseq.paths import data_root


def resolve_data_path(path: str | os.PathLike) -> Path:
    """Absolute paths stay; relative ones are tried from the cwd, then from the data root."""
    path = Path(path).expanduser()
    if path.is_absolute() or path.exists():
        return path
    candidate = data_root() / path
    if not candidate.exists():
        raise FileNotFoundError(f"data path {str(path)!r} not found here nor under {data_root()}")
    return candidate


def read_set(dataset: str, path: str | os.PathLike) -> Any:
    """Read one dataset split with the reader registered for ``dataset``."""
    return get_dataset(dataset).read(resolve_data_path(path))


def labels_for(task: str, data: Any, dataset: str = "physionet2012") -> pd.Series | pd.DataFrame:
    """Labels of ``task`` indexed by subject id (subjects without a label are excluded)."""
    spec = get_dataset(dataset)
    spec.task_type(task)
    return spec.labels(task, data)


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
    """One split: the read data, the ordered subject ids and their labels.

    ``y`` is (N,) for binary, multiclass and regression tasks and (N, K) for multilabel
    ones (NaN where a label is missing).
    """

    data: Any
    subject_ids: np.ndarray
    y: np.ndarray

    @classmethod
    def select(cls, data, labels: pd.Series | pd.DataFrame, ids) -> LabelledSet:
        ids = np.asarray(ids, dtype=np.int64)
        return cls(data=data, subject_ids=ids, y=labels.loc[ids].to_numpy(dtype=np.float32))


@dataclass
class Fold:
    """One train/validation partition of the training set (subject-disjoint).

    ``early_stop``, when set, is the part of the training subjects the members early-stop
    on; they are fitted on ``train`` alone, and ``val`` is seen only when scored.
    """

    train: LabelledSet
    val: LabelledSet
    early_stop: LabelledSet | None = None

    def fitting(self) -> LabelledSet:
        """Every subject this fold learns from: ``train`` plus the early-stopping part."""
        if self.early_stop is None:
            return self.train
        return LabelledSet(
            data=self.train.data,
            subject_ids=np.concatenate([self.train.subject_ids, self.early_stop.subject_ids]),
            y=np.concatenate([self.train.y, self.early_stop.y]),
        )


def stratification_target(labels: pd.Series | pd.DataFrame) -> np.ndarray:
    """What folds are stratified on: the label itself, or nothing for multi-column labels."""
    if isinstance(labels, pd.DataFrame):
        return np.zeros(len(labels), dtype=np.int64)
    return labels.to_numpy()


def default_split_ids(spec, labels: pd.Series | pd.DataFrame) -> SplitIds:
    """The single stratified split, or ``spec.cv_folds`` stratified folds, of ``labels``."""
    from medseq.tasks.splits import stratified_kfold, stratified_split

    ids, y = labels.index.to_numpy(), stratification_target(labels)
    if spec.cv_folds >= 2:
        pairs = stratified_kfold(ids, y, n_splits=spec.cv_folds, random_state=spec.split_seed)
    else:
        pairs = [
            stratified_split(ids, y, val_fraction=spec.val_fraction, random_state=spec.split_seed)
        ]
    return SplitIds(folds=list(pairs))


def folds_from_ids(data, labels: pd.Series | pd.DataFrame, split: SplitIds) -> list[Fold]:
    """Labelled folds of ``data`` from the ids of a split."""
    early: list[np.ndarray | None] = [None] * len(split.folds)
    early = list(split.early_stop) if split.early_stop else early
    return [
        Fold(
            LabelledSet.select(data, labels, tr),
            LabelledSet.select(data, labels, va),
            None if es is None else LabelledSet.select(data, labels, es),
        )
        for (tr, va), es in zip(split.folds, early, strict=True)
    ]


def hold_out_early_stop(
    split: SplitIds,
    labels: pd.Series | pd.DataFrame,
    *,
    fraction: float,
    seed: int,
    groups: np.ndarray | None = None,
) -> SplitIds:
    """``split`` with ``fraction`` of each fold's training ids moved to an early-stopping part.

    ``groups`` (aligned with ``labels``) names each id's patient or record; a group moves
    whole, and the draw is then unstratified (a group has no single label). Without it
    every id is its own patient and the draw is stratified on the label.
    """
    from medseq.tasks.splits import stratified_split

    ids = labels.index.to_numpy()
    group_of = pd.Series(ids if groups is None else np.asarray(groups), index=ids)
    target = pd.Series(stratification_target(labels), index=ids)
    early_stop, folds = [], []
    for k, (train, val) in enumerate(split.folds):
        train = np.asarray(train)
        members = group_of.loc[train]
        names = np.unique(members.to_numpy())
        if groups is None:
            strata = target.loc[names].to_numpy()
        else:
            strata = np.zeros(len(names), dtype=np.int64)
        if len(names) < 4:
            raise ValueError(
                f"fold {k}: {len(names)} training patients are too few to hold "
                "some out for early stopping; set [data] inner_val_fraction = 0"
            )
        _, held = stratified_split(names, strata, val_fraction=fraction, random_state=seed)
        is_held = members.isin(held).to_numpy()
        folds.append((np.sort(train[~is_held]), val))
        early_stop.append(np.sort(train[is_held]))
    return SplitIds(folds=folds, test=split.test, early_stop=early_stop)


def read_labelled(spec: DatasetSpec, config, path: str | Path) -> tuple[Any, Any]:
    """Read ``path`` and label it for the experiment's task (``max_subjects`` applied)."""
    data = spec.read(resolve_data_path(path))
    labels = spec.labels(config.data.task, data)
    if config.data.max_subjects is not None:
        labels = labels.sort_index().iloc[: config.data.max_subjects]
    return data, labels
