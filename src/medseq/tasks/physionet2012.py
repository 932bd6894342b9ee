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
