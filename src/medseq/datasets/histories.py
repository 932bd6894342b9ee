"""What the history datasets (:mod:`.mimic3`, :mod:`.meds`) share: tasks, features, splits.

``[data] dataset = "mimic3"`` reads a MIMIC-III folder, ``"meds"`` a MEDS folder; both
give the same :class:`~medseq.sources.history.HistorySet` and the same tasks
(:mod:`medseq.tasks.histories`):

=====================  ==========  ===========================================================
task                   type        label
=====================  ==========  ===========================================================
next_visit             multilabel  ICD-9 three-digit groups coded at the next visit
next_visit_chapter     multilabel  ICD-9 chapters coded at the next visit
mortality              binary      in-hospital death at the last admission, predicted at 24 h
=====================  ==========  ===========================================================

Samples of ``next_visit`` are (subject, visit) pairs, several per subject, so the test set
and the folds come from the ``"subject"`` split protocol (``[data] protocol = "subject"``):
a random :data:`TEST_FRACTION` of subjects (stratified on the label for ``mortality``) is
held out for the test, and the rest is split by subject into ``val_fraction`` or
``cv_folds``. The ``[features]`` table holds the keyword arguments of
:class:`~medseq.features.histories.visits.VisitFeaturizer` (``level``, ``min_count``,
``code_prefixes``, ``max_visits``).

Extra metrics: recall@10/20/30 and the micro-averaged AUROC for the next-visit tasks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medseq.datasets.registry import DatasetSpec, SplitIds
from medseq.features.histories.visits import VisitFeaturizer
from medseq.serving.requests import LazyBody
from medseq.sources.history import HistorySet
from medseq.tasks import histories

TEST_FRACTION = 0.2
TASKS = {"next_visit": "multilabel", "next_visit_chapter": "multilabel", "mortality": "binary"}


@dataclass
class HistoryData:
    """A read history and the task it was last labelled for (which fixes the samples).

    ``samples``, when set, are the samples to featurise instead of the task's (a request's
    patients, predicted after their last visit: :mod:`medseq.datasets.histories_serving`).
    """

    history: HistorySet
    task: str | None = None
    samples: pd.DataFrame | None = None

    @property
    def report(self):
        """The reader's :class:`~medseq.schema.ReadReport` (logged by the runner)."""
        return self.history.report


def _labels(task: str, data: HistoryData) -> pd.Series | pd.DataFrame:
    labels = histories.labels(data.history, task)
    data.task = task
    return labels


def _samples(data: HistoryData, task: str, ids: np.ndarray) -> pd.DataFrame:
    table = histories.samples(data.history, task) if data.samples is None else data.samples
    ids = np.asarray(ids, dtype=np.int64)
    unknown = ids[~np.isin(ids, table.index.to_numpy())]
    if unknown.size:
        raise ValueError(f"{task}: no sample with id {unknown[:5].tolist()} in this history")
    return table.loc[ids]


def _fit(features: dict[str, Any], data: HistoryData, ids: np.ndarray) -> VisitFeaturizer:
    if data.task is None:
        raise ValueError("history data has no task yet: call the spec's labels(task, data) first")
    if "task" in features:
        raise ValueError("[features]: 'task' comes from [data] task; remove it")
    if "code_prefixes" in features:
        features = {**features, "code_prefixes": tuple(features["code_prefixes"])}
    featurizer = VisitFeaturizer(data.task, **features)
    return featurizer.fit(data.history, _samples(data, data.task, ids))


def _transform(featurizer: VisitFeaturizer, data: HistoryData, ids: np.ndarray):
    if data.task is not None and data.task != featurizer.task:
        raise ValueError(
            f"the featurizer encodes {featurizer.task!r} samples, the data is labelled for "
            f"{data.task!r}"
        )
    return featurizer.transform(data.history, _samples(data, featurizer.task, ids))


def _sizes(featurizer: VisitFeaturizer) -> dict[str, int]:
    return {"vocab_size": featurizer.n_codes}


def _class_names(task: str, data: HistoryData | None) -> list[str]:
    if TASKS.get(task) != "multilabel":
        return []
    if data is None:  # asked by a federated server, which reads no rows
        raise ValueError(
            f"the label columns of history task {task!r} are the diagnosis groups found in "
            "the data, so they cannot be named without reading it; federated runs on history "
            "datasets take task 'mortality'"
        )
    return [str(c) for c in histories.labels(data.history, task).columns]


def _subject_split(data_config: Any, data: HistoryData, labels) -> SplitIds:
    """Test, then validation part(s), drawn by subject so no subject is on two sides."""
    from medseq.tasks.splits import stratified_kfold, stratified_split

    task = data.task or data_config.task
    ids = labels.index.to_numpy(dtype=np.int64)
    subject = histories.subject_of(ids, task)
    subjects = np.unique(subject)
    if isinstance(labels, pd.Series):  # one sample per subject: stratify on the label
        strata = labels.groupby(subject).max().reindex(subjects).to_numpy()
    else:
        strata = np.zeros(len(subjects), dtype=np.int64)
    seed = int(data_config.split_seed)
    rest, test = stratified_split(subjects, strata, val_fraction=TEST_FRACTION, random_state=seed)
    keep = np.isin(subjects, rest)
    if data_config.cv_folds >= 2:
        pairs = stratified_kfold(
            subjects[keep], strata[keep], n_splits=data_config.cv_folds, random_state=seed
        )
    else:
        pairs = [
            stratified_split(
                subjects[keep],
                strata[keep],
                val_fraction=data_config.val_fraction,
                random_state=seed,
            )
        ]

    def samples_of(chosen: np.ndarray) -> np.ndarray:
        return np.sort(ids[np.isin(subject, chosen)])

    return SplitIds(
        folds=[(samples_of(tr), samples_of(va)) for tr, va in pairs], test=samples_of(test)
    )


def _subjects(task: str, data: HistoryData, ids: np.ndarray) -> np.ndarray:
    """The patient behind each sample id (an admission or a visit of theirs)."""
    return histories.subject_of(np.asarray(ids, dtype=np.int64), data.task or task)


def _metrics(task: str, y_true: np.ndarray, y_prob: np.ndarray) -> dict[str, float]:
    if TASKS.get(task) != "multilabel":
        return {}
    from medseq.evaluation.ranking import ranking_metrics

    return ranking_metrics(y_true, y_prob)


# -- federated sites (simulated: the MIMIC-III and MEDS tables name no hospital) -----------
def _subject_groups(labels: pd.Series | pd.DataFrame, task: str) -> pd.Series:
    ids = labels.index.to_numpy(dtype=np.int64)
    return pd.Series(histories.subject_of(ids, task), index=labels.index)


def _task_of(data: Any) -> str:
    task = getattr(data, "task", None)
    if task is None:
        raise ValueError("history data has no task yet: call the spec's labels(task, data) first")
    return str(task)


def _subject_iid(data: Any, labels, *, n_sites: int, alpha: float, seed: int) -> pd.Series:
    """Subjects in random, near-equal shares, each with all of their samples (simulated
    sites: the tables record no hospital, so these are not real sites)."""
    from medseq.datasets import partitions

    groups = _subject_groups(labels, _task_of(data))
    return partitions.by_group_iid(groups, n_sites, seed)


def _subject_dirichlet(data: Any, labels, *, n_sites: int, alpha: float, seed: int) -> pd.Series:
    """Subjects spread by Dirichlet(``alpha``) shares of their label (for next-visit tasks:
    whether any of their samples has a positive label), each with all of their samples."""
    from medseq.datasets import partitions

    groups = _subject_groups(labels, _task_of(data))
    return partitions.dirichlet_by_group(labels, groups, n_sites, alpha, seed)


def _federated_fit(features: dict[str, Any]) -> Any:
    """The visit vocabulary fitted across sites from summed per-site visit counts of each
    code (:class:`~medseq.features.histories.federated.VisitFederatedFit`)."""
    from medseq.features.histories.federated import VisitFederatedFit

    if "task" in features:
        raise ValueError("[features]: 'task' comes from [data] task; remove it")
    options = dict(features)
    if "code_prefixes" in options:
        options["code_prefixes"] = tuple(options["code_prefixes"])
    return VisitFederatedFit(options, _site_samples)


def _site_samples(data: HistoryData, ids: np.ndarray) -> tuple[str, HistorySet, pd.DataFrame]:
    task = _task_of(data)
    return task, data.history, _samples(data, task, ids)


#: Stages that make no sense for visit histories, and why.
UNSUPPORTED = {
    "streaming": (
        "a history grows by whole visits, days to years apart: score each new visit with a "
        "batch or REST prediction; there is no per-observation state worth keeping"
    ),
}
_SERVING = "medseq.datasets.histories_serving"
VISITS_EXAMPLE = {
    "patients": [
        {
            "patient_id": "p1",
            "visits": [
                {"codes": ["ADMISSION/EMERGENCY", "ICD9DX/4019", "ICD9DX/42731"]},
                {"codes": ["ADMISSION/ELECTIVE", "ICD9DX/25000", "ICD9PX/3615"]},
            ],
        }
    ]
}
FHIR_EXAMPLE = {
    "resourceType": "Bundle",
    "type": "collection",
    "entry": [
        {"resource": {"resourceType": "Encounter", "id": "e1", "status": "finished",
                      "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                "code": "IMP"},
                      "subject": {"reference": "Patient/p1"},
                      "period": {"start": "2101-10-20T19:08:00+00:00"}}},
        {"resource": {"resourceType": "Condition",
                      "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-9-cm",
                                           "code": "401.9"}]},
                      "subject": {"reference": "Patient/p1"},
                      "encounter": {"reference": "Encounter/e1"}}},
        {"resource": {"resourceType": "MedicationRequest", "status": "completed",
                      "intent": "order",
                      "medicationCodeableConcept": {"coding": [
                          {"system": "http://hl7.org/fhir/sid/ndc", "code": "00904516561"}]},
                      "subject": {"reference": "Patient/p1"},
                      "encounter": {"reference": "Encounter/e1"}}},
    ],
}  # fmt: skip


def history_spec(name: str, read: Callable[[Path], HistoryData]) -> DatasetSpec:
    """The spec of a history dataset called ``name`` whose reader is ``read``."""
    return DatasetSpec(
        name=name,
        tasks=TASKS,
        read=read,
        labels=_labels,
        fit_featurizer=_fit,
        transform=_transform,
        model_sizes=_sizes,
        class_names=_class_names,
        protocols={"subject": _subject_split},
        metrics=_metrics,
        groups=_subjects,
        request=LazyBody(f"{_SERVING}:parse_visits", "visits", VISITS_EXAMPLE),
        fhir=LazyBody(f"{_SERVING}:parse_fhir", "visits", FHIR_EXAMPLE),
        partitions={"iid": _subject_iid, "dirichlet": _subject_dirichlet},
        federated_fit=_federated_fit,
        unsupported=UNSUPPORTED,
    )
