"""A code vocabulary: string codes to column indices, fitted on training data only.

Index 0 is the unknown bucket: codes seen fewer than ``min_count`` times in training, and
codes first met at prediction time, all land there, so a model never sees an index it was
not trained with and an unseen code is still counted as "something else happened".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

UNKNOWN = "<unk>"


class Vocabulary:
    """Codes seen at least ``min_count`` times in training, in sorted order after ``<unk>``.

    Parameters
    ----------
    min_count : int, default=1
        Occurrences in the training data a code needs to get its own index.

    Examples
    --------
    >>> vocab = Vocabulary(min_count=2).fit(["a", "b", "a", "c", "c"])
    >>> vocab.tokens_, vocab.index(["a", "b", "z"]).tolist()
    (['<unk>', 'a', 'c'], [1, 0, 0])
    """

    def __init__(self, min_count: int = 1) -> None:
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
        self.min_count = min_count
        self.tokens_: list[str] | None = None

    def fit(self, codes: Iterable[str]) -> Vocabulary:
        """Count ``codes`` (one entry per occurrence) and keep the frequent ones."""
        counts = pd.Series(list(codes), dtype=object).value_counts()
        kept = sorted(str(c) for c in counts.index[counts.to_numpy() >= self.min_count])
        if UNKNOWN in kept:
            raise ValueError(f"the code {UNKNOWN!r} is reserved for the unknown bucket")
        self.tokens_ = [UNKNOWN, *kept]
        self._lookup = {c: i for i, c in enumerate(self.tokens_)}
        return self

    def _check_fitted(self) -> list[str]:
        if self.tokens_ is None:
            from medseq.features.icu.normalizer import NotFittedError

            raise NotFittedError("this Vocabulary is not fitted; call fit(codes) first")
        return self.tokens_

    def __len__(self) -> int:
        return len(self._check_fitted())

    def index(self, codes: Iterable[str]) -> np.ndarray:
        """Column index of each code (0 for unknown codes), int64."""
        self._check_fitted()
        return np.fromiter((self._lookup.get(c, 0) for c in codes), dtype=np.int64)

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON: the settings and the tokens."""
        return {"min_count": self.min_count, "tokens": list(self._check_fitted())}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Vocabulary:
        """A fitted vocabulary from :meth:`state_dict`'s output."""
        from medseq.schema import check_known_keys

        check_known_keys("Vocabulary state", state, {"min_count", "tokens"})
        tokens = list(state["tokens"])
        if not tokens or tokens[0] != UNKNOWN or len(set(tokens)) != len(tokens):
            raise ValueError(f"Vocabulary state: tokens must be unique and start with {UNKNOWN!r}")
        vocab = cls(min_count=int(state["min_count"]))
        vocab.tokens_ = tokens
        vocab._lookup = {c: i for i, c in enumerate(tokens)}
        return vocab
