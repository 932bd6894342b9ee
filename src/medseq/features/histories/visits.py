"""Visits as sets of codes, and the multi-hot visit tensors of Doctor AI and RETAIN.

A sample (subject, cutoff) of :mod:`medseq.tasks.histories` becomes the sequence of that
subject's visits that began before the cutoff, each visit the set of its codes recorded
before the cutoff, one-hot encoded over a :class:`~medseq.features.histories.vocabulary.Vocabulary`
fitted on the training samples only:

``visits`` : float32 (N, V, C)
    1 where the visit holds the code (column 0 is the unknown bucket); visits run from the
    oldest to the most recent, zero padding after the last one.
``lengths`` : int64 (N,)
    Number of visits of each sample (>= 1; a visit whose codes are all filtered out is an
    all-zero row, still a visit).

ICD-9 codes can be grouped before encoding (``level="three_digit"`` or ``"chapter"``,
:mod:`medseq.sources.icd9`), which shrinks the vocabulary of a small dataset.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from medseq.features.base import ArraySpec, FeaturizerDescription
from medseq.features.histories.vocabulary import Vocabulary
from medseq.schema import check_known_keys
from medseq.sources.history import HistorySet
from medseq.sources.icd9 import group

logger = logging.getLogger(__name__)

DEFAULT_PREFIXES = ("ICD9DX/", "ICD9PX/", "NDC/", "DRUG/", "ADMISSION/")
LEVELS = ("code", "three_digit", "chapter")


class VisitFeaturizer:
    """Multi-hot visit sequences of history samples; the state is plain JSON.

    Parameters
    ----------
    task : str
        The history task whose samples this featurizer encodes (kept in the state so a
        saved bundle rebuilds the same prediction times).
    code_prefixes : tuple of str, default=DEFAULT_PREFIXES
        Codes used as inputs (diagnoses, procedures, drugs, admission type). Birth, death,
        gender and discharge codes are left out by default: discharge and death are the
        outcome of a stay.
    level : {"code", "three_digit", "chapter"}, default="code"
        Grouping of ICD-9 input codes.
    min_count : int, default=1
        Training visits a code must appear in to get its own column.
    max_visits : int, default=50
        Most recent visits kept per sample.
    """

    kind: ClassVar[str] = "VisitFeaturizer"

    def __init__(
        self,
        task: str,
        *,
        code_prefixes: tuple[str, ...] | list[str] = DEFAULT_PREFIXES,
        level: str = "code",
        min_count: int = 1,
        max_visits: int = 50,
    ) -> None:
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
        if isinstance(max_visits, bool) or not isinstance(max_visits, int) or max_visits < 1:
            raise ValueError(f"max_visits must be an integer >= 1, got {max_visits!r}")
        prefixes = tuple(code_prefixes)
        if not prefixes or not all(isinstance(p, str) and p for p in prefixes):
            raise ValueError(f"code_prefixes must be non-empty strings, got {code_prefixes!r}")
        self.task = str(task)
        self.code_prefixes = prefixes
        self.level = level
        self.min_count = min_count
        self.max_visits = max_visits
        self.vocabulary_: Vocabulary | None = None

    # -- fit / transform -------------------------------------------------------------------
    def _sample_codes(self, history: HistorySet, samples: pd.DataFrame) -> pd.DataFrame:
        """Codes of each sample's visits before its cutoff: ``row, visit, code``."""
        from medseq.tasks.histories import visit_codes

        codes = visit_codes(history)
        codes = codes[codes["code"].str.startswith(self.code_prefixes)]
        table = pd.DataFrame(
            {
                "row": np.arange(len(samples)),
                "subject_id": samples["subject_id"].to_numpy(),
                "cutoff": samples["cutoff"].to_numpy(dtype=np.float64),
            }
        )
        merged = table.merge(codes, on="subject_id", how="inner")
        merged = merged[merged["time"] < merged["cutoff"]]
        grouped = [group(c, self.level) for c in merged["code"]]
        merged = merged.assign(code=grouped).dropna(subset=["code"])
        return merged[["row", "subject_id", "visit", "code"]]

    def fit(self, history: HistorySet, samples: pd.DataFrame) -> VisitFeaturizer:
        """Fit the vocabulary on the visits of the training ``samples`` (one count per visit)."""
        _check_samples(samples)
        codes = self._sample_codes(history, samples)
        distinct = codes.drop_duplicates(["subject_id", "visit", "code"])
        self.vocabulary_ = Vocabulary(min_count=self.min_count).fit(distinct["code"])
        logger.info(
            "VisitFeaturizer(task=%s, level=%s, min_count=%d): %d codes from %d samples",
            self.task,
            self.level,
            self.min_count,
            len(self.vocabulary_),
            len(samples),
        )
        return self

    def transform(self, history: HistorySet, samples: pd.DataFrame) -> dict[str, np.ndarray]:
        """``visits`` (N, V, C) and ``lengths`` (N,) of ``samples``, in their order."""
        vocab = self._fitted()
        _check_samples(samples)
        visits = history.visits
        table = samples[["subject_id", "cutoff"]].reset_index(drop=True)
        table["row"] = np.arange(len(table))
        started = table.merge(visits[["subject_id", "visit", "start"]], on="subject_id")
        started = started[started["start"] < started["cutoff"]]
        n_visits = started.groupby("row")["visit"].max().reindex(table["row"]) + 1
        n_visits = n_visits.fillna(0).to_numpy(dtype=np.int64)
        if (n_visits == 0).any():
            row = int(np.flatnonzero(n_visits == 0)[0])
            raise ValueError(
                f"sample {samples.index[row]} (subject {table['subject_id'][row]}) has no "
                f"visit before its cutoff {table['cutoff'][row]:.2f} h"
            )
        first = np.maximum(n_visits - self.max_visits, 0)
        lengths = n_visits - first
        out = np.zeros((len(table), int(lengths.max()), len(vocab)), dtype=np.float32)
        codes = self._sample_codes(history, samples)
        step = codes["visit"].to_numpy() - first[codes["row"].to_numpy()]
        keep = step >= 0
        out[codes["row"].to_numpy()[keep], step[keep], vocab.index(codes["code"][keep])] = 1.0
        return {"visits": out, "lengths": lengths}

    # -- state ----------------------------------------------------------------------------
    def _fitted(self) -> Vocabulary:
        if self.vocabulary_ is None:
            from medseq.features.icu.normalizer import NotFittedError

            raise NotFittedError("this VisitFeaturizer is not fitted; call fit() first")
        return self.vocabulary_

    @property
    def n_codes(self) -> int:
        """Columns of the multi-hot visit vectors (vocabulary size, unknown bucket included)."""
        return len(self._fitted())

    @property
    def code_names(self) -> list[str]:
        """The code of each column."""
        return list(self._fitted().tokens_ or [])

    def describe(self) -> FeaturizerDescription:
        """``visits`` (N, T, C) multi-hot over the code vocabulary, ``lengths`` (N,)."""
        names = self.code_names
        return FeaturizerDescription(
            kind=self.kind,
            modality="visits",
            inputs=f"patient histories and {self.task!r} samples (subject_id, cutoff)",
            outputs=(
                ArraySpec("visits", "float32", ("N", "T", "C"), {"C": len(names)}, "multi-hot"),
                ArraySpec("lengths", "int64", ("N",), {}, "visits before the cutoff"),
            ),
            feature_names={"C": names},
            step="visit",
        )

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON, ``kind`` included, for the bundle."""
        return {
            "kind": self.kind,
            "task": self.task,
            "code_prefixes": list(self.code_prefixes),
            "level": self.level,
            "min_count": self.min_count,
            "max_visits": self.max_visits,
            "vocabulary": self._fitted().state_dict(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> VisitFeaturizer:
        """A fitted featurizer from :meth:`state_dict`'s output."""
        allowed = {
            "kind",
            "task",
            "code_prefixes",
            "level",
            "min_count",
            "max_visits",
            "vocabulary",
        }
        check_known_keys("VisitFeaturizer state", state, allowed)
        if state.get("kind") != cls.kind:
            raise ValueError(f"VisitFeaturizer state: kind must be {cls.kind!r}")
        featurizer = cls(
            state["task"],
            code_prefixes=tuple(state["code_prefixes"]),
            level=state["level"],
            min_count=int(state["min_count"]),
            max_visits=int(state["max_visits"]),
        )
        featurizer.vocabulary_ = Vocabulary.from_state_dict(state["vocabulary"])
        return featurizer


def _check_samples(samples: pd.DataFrame) -> None:
    missing = [c for c in ("subject_id", "cutoff") if c not in samples.columns]
    if missing:
        raise ValueError(f"samples: missing columns {missing}; expected subject_id, cutoff")
    if len(samples) == 0:
        raise ValueError("samples: no sample to featurise")
