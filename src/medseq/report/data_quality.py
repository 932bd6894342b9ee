"""Data quality: how much of each variable is missing, and whether that differs by site.

A model trained where lactate is drawn for most patients meets a site where it is drawn
for few: the featurizer then imputes the training mean, and the risk silently loses that
input. Missingness is therefore measured on what the model actually reads, the
featurizer's observation ``mask`` within its window, per variable:

* ``never_observed``: share of stays with no observation of the variable at all;
* ``hours_observed``: share of the stays' valid hourly bins holding an observation;

and for the descriptors (age, sex, ...) the share of stays where they are not recorded.
Two sets are compared variable by variable, and a difference of ``flag_points``
percentage points or more in either share is flagged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd


def missingness(features: Mapping[str, np.ndarray], feature_names: Sequence[str]) -> pd.DataFrame:
    """Per-variable missingness (in %) from a feature dict, indexed by variable."""
    mask = np.asarray(features["mask"]) > 0  # (N, T, F)
    lengths = np.asarray(features["lengths"])
    valid = np.arange(mask.shape[1])[None, :] < lengths[:, None]  # (N, T)
    observed_bins = (mask & valid[:, :, None]).sum(axis=(0, 1))
    frame = pd.DataFrame(
        {
            "never_observed": 100.0 * (~mask.any(axis=1)).mean(axis=0),
            "hours_observed": 100.0 * observed_bins / max(int(valid.sum()), 1),
        },
        index=pd.Index(list(feature_names), name="variable"),
    )
    return frame


def static_missingness(static: pd.DataFrame) -> pd.DataFrame:
    """Share (in %) of stays whose descriptor is not recorded, indexed by descriptor."""
    frame = pd.DataFrame({"never_observed": 100.0 * static.isna().mean(axis=0)})
    frame.index.name = "variable"
    return frame


def compare_missingness(
    frames: Mapping[str, pd.DataFrame], *, flag_points: float = 10.0
) -> pd.DataFrame:
    """Side-by-side missingness of several sets; flags large differences from the first.

    Parameters
    ----------
    frames : mapping of str to DataFrame
        Set name -> output of :func:`missingness` (or :func:`static_missingness`); the
        first set is the reference (the internal test set).
    flag_points : float, default=10.0
        Absolute difference, in percentage points, that raises the flag.

    Returns
    -------
    pandas.DataFrame
        Columns ``<measure> (<set>)`` for each set, ``max_difference`` (largest absolute
        difference from the reference, in points) and ``flag``; sorted by
        ``max_difference``, largest first.
    """
    if not frames:
        raise ValueError("compare_missingness needs at least one set")
    names = list(frames)
    reference = frames[names[0]]
    joined = pd.concat({name: frame for name, frame in frames.items()}, axis=1, join="outer")
    joined.columns = [f"{measure} ({name})" for name, measure in joined.columns]
    diffs = [
        (frames[name][col] - reference[col]).abs()
        for name in names[1:]
        for col in reference.columns
        if col in frames[name]
    ]
    difference = pd.concat(diffs, axis=1).max(axis=1) if diffs else pd.Series(0.0, joined.index)
    joined["max_difference"] = difference.reindex(joined.index).fillna(0.0)
    joined["flag"] = joined["max_difference"] >= flag_points
    return joined.sort_values("max_difference", ascending=False, kind="stable")
