"""Static descriptors (one row per subject) as a fixed-width float vector.

Encoding, per column of ``columns``:

continuous (Age, Height, Weight, anything not in :data:`CATEGORIES`)
    standardised with training statistics (winsorised like the time series, see
    :mod:`medseq.features.icu.normalizer`), NaN -> 0 (the training mean), plus a
    ``<name>_missing`` indicator, so a model can tell "average" from "unknown".
binary (Gender: 0 = female, 1 = male)
    ``<name>`` is 1 for the second category, plus ``<name>_missing``.
categorical (ICUType: 1 Coronary Care, 2 Cardiac Surgery Recovery, 3 Medical, 4 Surgical)
    one-hot ``<name>=<category>`` plus ``<name>=unknown``.

A value outside a column's categories is treated as missing and counted
(``static_unexpected:<name>``); missing values are counted too (``static_missing:<name>``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from medseq.features.icu.normalizer import Normalizer, NotFittedError, check_state
from medseq.schema import DataError, ReadReport

logger = logging.getLogger(__name__)

STATE_VERSION = 1
#: Known categorical descriptors and their categories (PhysioNet 2012 SOURCE.md).
CATEGORIES: dict[str, tuple[float, ...]] = {
    "Gender": (0.0, 1.0),
    "ICUType": (1.0, 2.0, 3.0, 4.0),
}
_STATE_KEYS = frozenset({"version", "kind", "columns", "categories", "names", "normalizer"})


def static_rows(
    static: pd.DataFrame, subject_ids: np.ndarray, columns: Sequence[str], where: str = "static"
) -> np.ndarray:
    """The ``columns`` of ``static`` for ``subject_ids``, in that order, shape (N, C).

    Raises
    ------
    DataError
        If a column is missing, the index repeats a subject, or a requested subject has
        no row (the message names the first ids).
    """
    missing_cols = [c for c in columns if c not in static.columns]
    if missing_cols:
        raise DataError(f"{where}: missing columns {missing_cols}; has {list(static.columns)}")
    if not static.index.is_unique:
        repeated = static.index[static.index.duplicated()].unique()[:5].tolist()
        raise DataError(f"{where}: subject_id index repeats {repeated}")
    position = static.index.get_indexer(pd.Index(subject_ids))
    absent = subject_ids[position < 0]
    if absent.size:
        raise DataError(
            f"{where}: no static row for subject_id {absent[:10].tolist()}"
            f"{f' and {absent.size - 10} more' if absent.size > 10 else ''}"
        )
    try:
        return static[list(columns)].to_numpy(dtype=np.float64, na_value=np.nan)[position]
    except (TypeError, ValueError) as err:
        raise DataError(f"{where}: non-numeric static value ({err})") from None


class StaticEncoder:
    """Encode static descriptors; see the module doc for the columns produced.

    Parameters
    ----------
    columns : sequence of str, default=("Age", "Gender", "Height", "ICUType", "Weight")
    clip_quantiles : (float, float) or None, default=(0.005, 0.995)
        Winsorisation of the continuous columns, learned on training subjects.

    Attributes
    ----------
    names_ : list of str, length S
    normalizer_ : Normalizer
        Fitted on the continuous columns.
    """

    def __init__(
        self,
        columns: Sequence[str] = ("Age", "Gender", "Height", "ICUType", "Weight"),
        *,
        clip_quantiles: Sequence[float] | None = (0.005, 0.995),
    ) -> None:
        self.columns = columns
        self.clip_quantiles = clip_quantiles

    def _continuous(self) -> list[str]:
        return [c for c in self.columns if c not in self.categories_]

    def _names(self) -> list[str]:
        names: list[str] = []
        for col in self.columns:
            cats = self.categories_.get(col)
            if cats is None or len(cats) == 2:
                names += [col, f"{col}_missing"]
            else:
                names += [f"{col}={c:g}" for c in cats] + [f"{col}=unknown"]
        return names

    def fit(self, static: pd.DataFrame, subject_ids: np.ndarray) -> StaticEncoder:
        """Learn the continuous columns' statistics from the training subjects' rows."""
        self.columns = [str(c) for c in self.columns]
        if len(set(self.columns)) != len(self.columns):
            raise ValueError(f"static columns repeat a name: {self.columns}")
        self.categories_ = {c: CATEGORIES[c] for c in self.columns if c in CATEGORIES}
        continuous = self._continuous()
        rows = static_rows(static, subject_ids, continuous, "static (fit)")
        var = np.broadcast_to(np.arange(len(continuous)), rows.shape)
        seen = ~np.isnan(rows)
        self.normalizer_ = Normalizer(clip_quantiles=self.clip_quantiles)
        self.normalizer_.fit(var[seen], rows[seen], continuous)
        self.names_ = self._names()
        return self

    def transform(
        self, static: pd.DataFrame, subject_ids: np.ndarray, report: ReadReport | None = None
    ) -> np.ndarray:
        """Encoded descriptors of ``subject_ids``, shape (N, S) float32.

        Missing and unexpected values are counted in ``report`` when given.
        """
        if not hasattr(self, "names_"):
            raise NotFittedError("this StaticEncoder is not fitted yet: call fit first")
        report = report if report is not None else ReadReport(source="static")
        rows = static_rows(static, subject_ids, self.columns)
        z = self.normalizer_.transform(rows[:, [self.columns.index(c) for c in self._continuous()]])
        parts, k = [], 0
        for j, col in enumerate(self.columns):
            x = rows[:, j]
            report.add(f"static_missing:{col}", int(np.isnan(x).sum()))
            if col not in self.categories_:
                missing = np.isnan(z[:, k])
                parts += [np.where(missing, 0.0, z[:, k]), missing]
                k += 1
                continue
            cats = np.asarray(self.categories_[col])
            onehot = x[:, None] == cats[None, :]
            unexpected = ~np.isnan(x) & ~onehot.any(axis=1)
            report.add(f"static_unexpected:{col}", int(unexpected.sum()))
            unknown = ~onehot.any(axis=1)
            parts += [onehot[:, 1], unknown] if len(cats) == 2 else [*onehot.T, unknown]
        return np.column_stack(parts).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON-able state."""
        if not hasattr(self, "names_"):
            raise NotFittedError("this StaticEncoder is not fitted yet: call fit first")
        return {
            "version": STATE_VERSION,
            "kind": "StaticEncoder",
            "columns": list(self.columns),
            "categories": {c: list(v) for c, v in self.categories_.items()},
            "names": list(self.names_),
            "normalizer": self.normalizer_.state_dict(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> StaticEncoder:
        """Rebuild a fitted encoder from :meth:`state_dict` (keys and version checked)."""
        check_state(state, _STATE_KEYS, "StaticEncoder", STATE_VERSION)
        normalizer = Normalizer.from_state_dict(state["normalizer"])
        self = cls([str(c) for c in state["columns"]], clip_quantiles=normalizer.clip_quantiles)
        categories = state["categories"].items()
        self.categories_ = {str(c): tuple(float(x) for x in v) for c, v in categories}
        self.normalizer_ = normalizer
        self.names_ = self._names()
        if self.names_ != state["names"] or normalizer.names_ != self._continuous():
            raise ValueError("StaticEncoder state: names do not match columns and categories")
        return self
