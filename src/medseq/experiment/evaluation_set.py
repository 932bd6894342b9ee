"""The labelled samples a saved bundle is evaluated on, from any registered dataset.

A bundle trained under a split protocol (``[data] protocol``: MedMNIST's official split,
Tox21's random or scaffold split, MIT-BIH's DS1/DS2) took its test set from the training
file itself. Evaluating it on that file must therefore keep the protocol's test part
only, or the metrics would mix in the samples it was trained on. The split is recomputed
from the bundle's provenance (protocol, seed, folds), so ``medseq evaluate``, ``medseq
report`` and the training run agree on which samples are the test set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from medseq.datasets.registry import DatasetSpec
from medseq.experiment.data import file_sha256, resolve_data_path


@dataclass
class EvaluationSet:
    """A read set, the labels to evaluate, and what was done to choose them."""

    spec: DatasetSpec
    data: Any
    labels: pd.Series | pd.DataFrame
    path: str
    sha256: str
    protocol_test: bool = False
    note: str | None = None


def _protocol_test_ids(bundle, spec: DatasetSpec, data, labels):
    from medseq.experiment.config import ExperimentData

    prov = bundle.provenance
    split = prov.get("split", {})
    spec_data = ExperimentData(
        dataset=spec.name,
        train=prov["files"]["train"]["path"],
        test="",
        task=bundle.dataset_task,
        val_fraction=split.get("val_fraction", 0.2),
        cv_folds=split.get("cv_folds", 0),
        split_seed=split.get("split_seed", 0),
        max_subjects=split.get("max_subjects"),
        protocol=split["protocol"],
    )
    if spec_data.max_subjects is not None:
        labels = labels.sort_index().iloc[: spec_data.max_subjects]
    return spec.protocol(spec_data.protocol)(spec_data, data, labels).test


def is_training_source(bundle, resolved: Path, sha256: str) -> bool:
    """Whether ``resolved`` is the data the bundle was trained on.

    True for the same bytes (a copy included), and for the same place on disk even when one
    side names a folder and the other a file inside it (a bundle trained on ``tox21/`` and
    evaluated on ``tox21/tox21.csv.gz``), whose hashes differ.
    """
    train = bundle.provenance.get("files", {}).get("train", {})
    if sha256 == train.get("sha256"):
        return True
    try:
        trained = resolve_data_path(train["path"]).resolve()
    except (KeyError, FileNotFoundError):
        return False
    given = Path(resolved).resolve()
    return given == trained or trained in given.parents or given in trained.parents


def evaluation_set(
    bundle, path: str | os.PathLike, *, max_subjects: int | None = None
) -> EvaluationSet:
    """Read ``path`` with the bundle's dataset and label it with the bundle's task.

    When ``path`` is the file the bundle was trained on under a split protocol, only the
    protocol's test samples are kept (and ``note`` says so); ``max_subjects`` then keeps
    the first test samples by id.
    """
    prov = bundle.provenance
    spec = bundle.spec()
    resolved = resolve_data_path(path)
    data = spec.read(resolved)
    labels = spec.labels(bundle.dataset_task, data)
    sha = file_sha256(Path(resolved))
    protocol = prov.get("split", {}).get("protocol", "")
    chosen, note = False, None
    if protocol and is_training_source(bundle, resolved, sha):
        test_ids = _protocol_test_ids(bundle, spec, data, labels)
        if test_ids is None:
            raise ValueError(
                f"{path} is the bundle's training file and its protocol {protocol!r} sets no "
                "test part: evaluate on data the model has not seen"
            )
        labels = labels.loc[sorted(test_ids)]
        chosen = True
        note = (
            f"{path} is the file the bundle was trained on: only the test part of its "
            f"{protocol!r} split protocol ({len(labels)} samples) is evaluated"
        )
    labels = labels.sort_index()
    if max_subjects is not None:
        labels = labels.iloc[:max_subjects]
    return EvaluationSet(spec, data, labels, str(path), sha, chosen, note)
