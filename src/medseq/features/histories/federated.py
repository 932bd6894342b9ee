"""Fit the visit featurizer across sites from code counts (no history leaves a site).

:class:`~medseq.features.histories.visits.VisitFeaturizer` learns one thing, its
vocabulary: every input code found in at least ``min_count`` distinct training visits, in
sorted order after ``<unk>``. Visit counts add up when no patient is at two sites (the
history partitions keep each subject whole), so each site sends, per code, the number of its
own training visits that hold it; the server sums them and keeps the codes exactly as
:meth:`~medseq.features.histories.vocabulary.Vocabulary.fit` would on the pooled training
samples. One stage, ``codes``. What leaks: a site's code histogram (which diagnoses,
procedures and drugs its patients get, and how often), not a patient.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from medseq.features.federated import FederatedFit, require_replies
from medseq.features.histories.visits import VisitFeaturizer
from medseq.features.histories.vocabulary import UNKNOWN, Vocabulary
from medseq.sources.history import HistorySet

#: ``(data, ids) -> (task, history, samples)``: a site's task, history and training samples.
Samples = Callable[[Any, np.ndarray], tuple[str, HistorySet, pd.DataFrame]]


class VisitFederatedFit(FederatedFit):
    """The vocabulary of a :class:`VisitFeaturizer` from summed per-site visit counts.

    Parameters
    ----------
    options : dict
        The featurizer's keyword arguments (``level``, ``min_count``, ``code_prefixes``,
        ``max_visits``); the task comes with the sites' replies.
    samples : callable ``(data, ids) -> (task, HistorySet, DataFrame)``
    """

    stages = ("codes",)

    def __init__(self, options: dict[str, Any], samples: Samples) -> None:
        self.options = dict(options)
        self.samples = samples
        VisitFeaturizer("check", **self.options)  # bad options fail here, before any exchange

    def site_statistics(
        self, stage: str, payload: Any, data: Any, ids: np.ndarray
    ) -> dict[str, Any]:
        self.check_stage(stage)
        task, history, samples = self.samples(data, np.asarray(ids, dtype=np.int64))
        featurizer = VisitFeaturizer(task, **self.options)
        codes = featurizer._sample_codes(history, samples)
        distinct = codes.drop_duplicates(["subject_id", "visit", "code"])
        counts = distinct["code"].astype(str).value_counts()
        return {"task": task, "counts": {str(c): int(n) for c, n in sorted(counts.items())}}

    def merge(self, stage: str, payload: Any, replies: Sequence[dict[str, Any]]) -> Any:
        self.check_stage(stage)
        require_replies(stage, replies)
        tasks = sorted({str(r["task"]) for r in replies})
        if len(tasks) != 1:
            raise ValueError(f"federated visit statistics: sites encode different tasks {tasks}")
        counts: dict[str, int] = {}
        for reply in replies:
            for code, n in reply["counts"].items():
                counts[str(code)] = counts.get(str(code), 0) + int(n)
        featurizer = VisitFeaturizer(tasks[0], **self.options)
        kept = sorted(c for c, n in counts.items() if n >= featurizer.min_count)
        if UNKNOWN in kept:
            raise ValueError(f"the code {UNKNOWN!r} is reserved for the unknown bucket")
        featurizer.vocabulary_ = Vocabulary.from_state_dict(
            {"min_count": featurizer.min_count, "tokens": [UNKNOWN, *kept]}
        )
        return featurizer.state_dict()
