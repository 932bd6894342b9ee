"""A labelled set scored by a bundle: what every section of the report is computed from."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class EvaluatedSet:
    """One labelled set, featurised and scored once by the bundle.

    Attributes
    ----------
    name : str
        How the report names it ("internal test", "external", "validation").
    path : str
        Where it was read from ("" when built in memory).
    data : object
        The read set (``events``, ``static``, ``outcomes``, ``report``).
    subject_ids : ndarray of shape (N,)
    y : ndarray of shape (N,) or (N, K)
        Labels (0/1 for binary tasks, class indices, or label columns for multilabel).
    features : dict of ndarray
        The bundle featurizer's output for ``subject_ids``.
    risk : ndarray of shape (N,) or (N, K)
        Raw (uncalibrated) predictions of the bundle (class/label probabilities for
        multiclass/multilabel bundles).
    sha256 : str or None
        Hash of the source file, to detect a set that was also used for training.
    protocol_note : str or None
        Set when the file is the training file and only its protocol test part was kept.
    groups : ndarray of shape (N,) or None
        The patient of each sample where several samples share one (the spec's
        ``groups``): the CIs resample patients, as the run and ``medseq evaluate`` do.
    """

    name: str
    path: str
    data: Any
    subject_ids: np.ndarray
    y: np.ndarray
    features: dict[str, np.ndarray]
    risk: np.ndarray
    sha256: str | None = None
    protocol_note: str | None = None
    groups: np.ndarray | None = None

    @property
    def static(self) -> pd.DataFrame:
        """Raw descriptors of the set's subjects, in ``subject_ids`` order."""
        return self.data.static.loc[self.subject_ids]

    @property
    def prevalence(self) -> float:
        return float(np.mean(self.y))


def score_set(
    bundle,
    data: Any,
    labels: pd.Series | pd.DataFrame,
    *,
    name: str,
    path: str = "",
    sha256: str | None = None,
    spec=None,
) -> EvaluatedSet:
    """Featurise the labelled subjects of ``data`` with the bundle and predict them.

    ``spec`` is the bundle's :class:`~medseq.datasets.registry.DatasetSpec` (the bundle's
    own when omitted); its ``transform`` featurises any modality.
    """
    from medseq.evaluation.scoring import sample_groups

    if spec is None:
        spec = bundle.spec()
    ids = labels.index.to_numpy(dtype=np.int64)
    features = spec.transform(bundle.featurizer, data, ids)
    return EvaluatedSet(
        name=name,
        path=path,
        data=data,
        subject_ids=ids,
        y=labels.to_numpy(dtype=np.float64),
        features=features,
        risk=np.asarray(bundle.predict_arrays(features), dtype=np.float64),
        sha256=sha256,
        groups=sample_groups(spec, bundle.dataset_task, data, ids),
    )


def load_set(
    bundle, path: str | os.PathLike, *, name: str, max_subjects: int | None = None
) -> EvaluatedSet:
    """Read ``path`` with the reader and labels of the bundle's dataset and task, then score.

    ``max_subjects`` keeps the first subjects by id (as ``data.max_subjects`` does in an
    experiment), for quick looks; reports meant to be read use every subject. On the
    bundle's own training file under a split protocol only the protocol's test part is
    kept (:func:`medseq.experiment.evaluation_set.evaluation_set`).
    """
    from medseq.experiment.evaluation_set import evaluation_set

    chosen = evaluation_set(bundle, path, max_subjects=max_subjects)
    scored = score_set(
        bundle,
        chosen.data,
        chosen.labels,
        name=name,
        path=str(path),
        sha256=chosen.sha256,
        spec=chosen.spec,
    )
    scored.protocol_note = chosen.note
    return scored


def training_overlap(bundle, evaluated: EvaluatedSet) -> str | None:
    """A warning when ``evaluated`` comes from the file the bundle was trained on."""
    if evaluated.protocol_note:
        return evaluated.protocol_note
    from medseq.experiment.data import resolve_data_path
    from medseq.experiment.evaluation_set import is_training_source

    if not evaluated.sha256 or not evaluated.path:
        return None
    if is_training_source(bundle, resolve_data_path(evaluated.path), evaluated.sha256):
        return (
            f"{evaluated.name} set {evaluated.path} is the file the model was trained and "
            "selected on: its metrics are optimistic and not a validation"
        )
    return None
