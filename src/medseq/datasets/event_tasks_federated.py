"""Federated parts of the config-task event datasets (``fhir_r4``, ``meds_events``,
``flat_events``): simulated sites of whole patients, and the visit featurizer fitted from
per-site code counts.

A config-task sample is a (patient, prediction time); one patient may give several, and a
patient must stay at one site (a site that trains on one of a patient's prediction times
and validates on another would leak). So the partitions here place whole *subjects*, each
with all of their samples:

``iid``
    subjects in random, near-equal shares (:func:`medseq.datasets.partitions.by_group_iid`),
    the IID control;
``dirichlet``
    subjects spread by Dirichlet(``alpha``) shares of their label, a subject's label being
    whether any of their samples is positive
    (:func:`medseq.datasets.partitions.dirichlet_by_group`; Hsu et al. 2019).

These are *simulated* sites: a Synthea FHIR export and a MEDS folder record no hospital or
site column a partition could follow (Synthea's Organization resources are the providers of
single encounters, not a patient's site), so the split only imitates site heterogeneity.
Data with a real site column uses a partition by it instead (``flat_events``' ``group``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from medseq.tasks import inputs as task_inputs

if TYPE_CHECKING:
    from medseq.datasets.event_tasks import EventTaskData
    from medseq.sources.history import HistorySet


def _subject_of(data: EventTaskData, labels: pd.Series | pd.DataFrame) -> pd.Series:
    """The subject behind each labelled sample id, indexed by sample id."""
    samples, _ = data.labelled()
    ids = labels.index.to_numpy(dtype=np.int64)
    return pd.Series(samples.loc[ids, "subject_id"].to_numpy(dtype=np.int64), index=ids)


def subject_iid(
    data: EventTaskData, labels: pd.Series, *, n_sites: int, alpha: float, seed: int
) -> pd.Series:
    """Whole subjects in random, near-equal shares (simulated sites; ``alpha`` unused)."""
    from medseq.datasets import partitions

    return partitions.by_group_iid(_subject_of(data, labels), n_sites, seed)


def subject_dirichlet(
    data: EventTaskData, labels: pd.Series, *, n_sites: int, alpha: float, seed: int
) -> pd.Series:
    """Whole subjects spread by Dirichlet(``alpha``) shares of whether any of their samples
    is positive (simulated sites, label-skewed)."""
    from medseq.datasets import partitions

    return partitions.dirichlet_by_group(labels, _subject_of(data, labels), n_sites, alpha, seed)


#: The simulated-site partitions of a config-task event dataset without a site column.
SUBJECT_PARTITIONS = {"iid": subject_iid, "dirichlet": subject_dirichlet}


def _site_samples(data: EventTaskData, ids: np.ndarray) -> tuple[str, HistorySet, pd.DataFrame]:
    """A site's task, input history and training samples (keyed by sample id), what
    :class:`~medseq.features.histories.federated.VisitFederatedFit` counts codes in."""
    samples, history = data.labelled()
    chosen = task_inputs.as_sample_keyed(samples.loc[np.asarray(ids, dtype=np.int64)])
    return str(data.task), history, chosen


def federated_fit(features: dict[str, Any]) -> Any:
    """The visit featurizer of ``[features]`` fitted across sites from summed per-site
    visit counts of each code, the same fit as MIMIC-III's and MEDS's
    (:class:`~medseq.features.histories.federated.VisitFederatedFit`).

    Federated runs need ``code_prefixes`` written in ``[features]``: pooled training takes
    every code system its training samples hold, which a server that sees no rows cannot
    know (and an unlisted system seen at only one site would change the vocabulary). The
    time grid (``kind = "grid"``) has no federated fit yet and is refused.
    """
    from medseq.features.histories.federated import VisitFederatedFit

    options = dict(features)
    kind = options.pop("kind", "visits")
    if kind != "visits":
        raise ValueError(
            f"[features] kind = {kind!r} has no federated fit; federated runs on config "
            "tasks use kind = 'visits'"
        )
    if "task" in options:
        raise ValueError("[features]: 'task' comes from [data] task; remove it")
    if "code_prefixes" not in options:
        raise ValueError(
            "[features] code_prefixes is required for a federated run on a config task: "
            "the server sees no rows, so it cannot take the code systems from the training "
            "samples as pooled training does; list them (e.g. ['eicu.', 'GENDER/'])"
        )
    options["code_prefixes"] = tuple(options["code_prefixes"])
    return VisitFederatedFit(options, _site_samples)
