"""Labels of the PhysioNet/CinC Challenge 2012 tasks.

Both take a :class:`~medseq.sources.physionet2012.PhysioNet2012Set` and return a
``pandas.Series`` indexed by ``subject_id``. Subjects without a label are excluded, never
filled: how many, and why, is logged and kept in ``Series.attrs["excluded"]``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from medseq.sources.physionet2012 import PhysioNet2012Set

logger = logging.getLogger(__name__)


def mortality_labels(data: PhysioNet2012Set) -> pd.Series:
    """In-hospital death (the Challenge's event 1 target): 1 died, 0 survived.

    Every stay has this label (the reader rejects an outcomes file that lacks a record or
    holds anything but 0/1 here), so no subject is excluded.

    Returns
    -------
    pandas.Series of int64, name ``in_hospital_death``, indexed by ``subject_id``.
    """
    labels = data.outcomes["in_hospital_death"].astype(np.int64).rename("in_hospital_death")
    labels.attrs["excluded"] = {}
    return labels


def length_of_stay_labels(data: PhysioNet2012Set) -> pd.Series:
    """Length of the hospital stay in days (the Challenge's ``Length_of_stay``).

    Stays whose length is missing (``-1`` in the outcomes file, NaN after reading) are
    excluded, not imputed: a made-up target would bias the regression. Their number is
    logged and stored as ``attrs["excluded"]["missing_length_of_stay"]``.

    Returns
    -------
    pandas.Series of float64 (days), name ``length_of_stay``, indexed by ``subject_id``.
    """
    days = data.outcomes["length_of_stay"].astype(np.float64)
    missing = days.isna()
    labels = days[~missing].rename("length_of_stay")
    labels.attrs["excluded"] = {"missing_length_of_stay": int(missing.sum())}
    if missing.any():
        logger.info(
            "length_of_stay: excluded %d of %d subjects whose length of stay is missing",
            int(missing.sum()),
            len(days),
        )
    return labels


#: Upper bounds (days, inclusive) of the length-of-stay classes; the last class is open.
LOS_CLASS_EDGES = (7.0, 14.0)
LOS_CLASS_NAMES = ("up_to_7d", "8_to_14d", "over_14d")
OUTCOME_LABELS = ("in_hospital_death", "death_within_30d", "stay_over_14d")


def length_of_stay_class_labels(data: PhysioNet2012Set) -> pd.Series:
    """Length of stay as classes (≤ 7 days, 8–14 days, > 14 days), the MIMIC-III
    benchmark's way of asking "how long will this stay last" as a classification.

    Stays with a missing length of stay are excluded, as in :func:`length_of_stay_labels`.

    Returns
    -------
    pandas.Series of int64 class indices (see :data:`LOS_CLASS_NAMES`).
    """
    days = length_of_stay_labels(data)
    classes = np.searchsorted(np.asarray(LOS_CLASS_EDGES), days.to_numpy(), side="left")
    labels = pd.Series(classes.astype(np.int64), index=days.index, name="length_of_stay_class")
    labels.attrs["excluded"] = dict(days.attrs["excluded"])
    return labels


def outcome_labels(data: PhysioNet2012Set) -> pd.DataFrame:
    """Three outcomes of each stay as a multilabel target (NaN where one is unknown).

    ``in_hospital_death``; ``death_within_30d``, death within 30 days of ICU admission
    (the outcomes file's ``Survival``: days to death, missing for patients not known to
    have died, who count as 0); ``stay_over_14d``, a hospital stay longer than 14 days
    (NaN where the length of stay is missing).
    """
    outcomes = data.outcomes
    survival = outcomes["survival"].to_numpy(dtype=np.float64)
    days = outcomes["length_of_stay"].to_numpy(dtype=np.float64)
    frame = pd.DataFrame(
        {
            "in_hospital_death": outcomes["in_hospital_death"].to_numpy(dtype=np.float64),
            "death_within_30d": np.where(np.isnan(survival), 0.0, survival <= 30).astype(float),
            "stay_over_14d": np.where(np.isnan(days), np.nan, days > 14).astype(float),
        },
        index=outcomes.index,
    )
    frame.attrs["excluded"] = {}
    return frame
