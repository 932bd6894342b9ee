"""Fit a :class:`~medseq.features.molecules.smiles.SmilesFeaturizer` across sites from token counts.

The featurizer learns one thing, its vocabulary: every token seen ``min_count`` times in
the training molecules, most frequent first. Token counts add up, so each site sends how
often it saw each token among its own training molecules, the server sums them and keeps
the tokens exactly as :meth:`SmilesVocabulary.fit` would on the pooled molecules (same
order, ties by token). One stage, ``tokens``. What leaks: a site's token histogram (which
atoms, rings and charges its molecules use, and how often), not a molecule.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from medseq.features.federated import FederatedFit, require_replies
from medseq.features.molecules.smiles import (
    PAD,
    UNK,
    SmilesFeaturizer,
    SmilesVocabulary,
    tokenize,
)

#: ``(data, ids) -> SMILES``: a site's training molecules, in ``ids`` order.
Molecules = Callable[[Any, np.ndarray], Sequence[str]]


class SmilesFederatedFit(FederatedFit):
    """The vocabulary of a :class:`SmilesFeaturizer` from summed per-site token counts.

    Parameters
    ----------
    options : dict
        The featurizer's keyword arguments (``min_count``, ``max_length``, ...).
    molecules : callable ``(data, ids) -> list of str``
    """

    stages = ("tokens",)

    def __init__(self, options: dict[str, Any], molecules: Molecules) -> None:
        self.options = dict(options)
        self.molecules = molecules
        SmilesFeaturizer(**self.options)  # bad options fail here, before any exchange

    def site_statistics(
        self, stage: str, payload: Any, data: Any, ids: np.ndarray
    ) -> dict[str, Any]:
        self.check_stage(stage)
        counts: Counter[str] = Counter()
        for smiles in self.molecules(data, np.asarray(ids, dtype=np.int64)):
            counts.update(tokenize(smiles))
        return {"counts": dict(sorted(counts.items()))}

    def merge(self, stage: str, payload: Any, replies: Sequence[dict[str, Any]]) -> Any:
        self.check_stage(stage)
        require_replies(stage, replies)
        counts: Counter[str] = Counter()
        for reply in replies:
            counts.update({str(t): int(n) for t, n in reply["counts"].items()})
        featurizer = SmilesFeaturizer(**self.options)
        min_count = featurizer.vocabulary.min_count
        kept = sorted(
            (t for t, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t)
        )
        vocabulary = {"min_count": min_count, "tokens": [PAD, UNK, *kept]}
        featurizer.vocabulary = SmilesVocabulary.from_state_dict(vocabulary)
        return featurizer.state_dict()
