"""Subject-level, stratified train/validation splits.

Splits are made on subject ids, one label per subject, so a subject's stays, windows or
visits can never fall on both sides (braindecode#1144 and PyHealth's ``split_by_visit``
are what this prevents). They are stratified on the label so that a rare outcome
(14 % in-hospital deaths in PhysioNet 2012) has the same share in both parts; a
continuous label (length of stay) is stratified on its quantile bins.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.model_selection import StratifiedKFold, train_test_split

logger = logging.getLogger(__name__)

#: A label with at most this many distinct values is treated as classes.
MAX_CLASSES = 20
#: A label with more distinct values is stratified on this many quantile bins.
N_BINS = 10


def strata(y: ArrayLike, *, n_bins: int = N_BINS) -> np.ndarray:
    """The classes to stratify on: ``y`` itself if it has few values, else its quantile bin.

    Parameters
    ----------
    y : array-like of shape (N,)
        One label per subject, no NaN.
    n_bins : int, default=10
        Quantile bins for a continuous ``y`` (fewer when quantiles coincide).

    Returns
    -------
    ndarray of shape (N,)
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (one label per subject), got shape {y.shape}")
    if y.dtype.kind == "f" and np.isnan(y).any():
        row = int(np.flatnonzero(np.isnan(y))[0])
        raise ValueError(f"y must not contain NaN (first at position {row}); drop those first")
    if len(np.unique(y)) <= MAX_CLASSES:
        return y
    return np.asarray(pd.qcut(y, q=n_bins, labels=False, duplicates="drop"))


def stratified_split(
    subject_ids: ArrayLike,
    y: ArrayLike,
    *,
    val_fraction: float = 0.2,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Split subjects into train and validation, stratified on ``y``.

    Parameters
    ----------
    subject_ids : array-like of shape (N,)
        Unique subject ids.
    y : array-like of shape (N,)
        The label of each subject (classes, or a continuous value: see :func:`strata`).
    val_fraction : float, default=0.2
        Share of subjects in the validation part, in (0, 1).
    random_state : int, default=0
        Seed: the same seed gives the same split.

    Returns
    -------
    train_ids, val_ids : ndarray
        Disjoint, together every subject once, each sorted.

    Examples
    --------
    >>> train, val = stratified_split(range(10), [0, 1] * 5, val_fraction=0.2)
    >>> sorted(set(train) | set(val)) == list(range(10)), len(val)
    (True, 2)
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    ids, classes = _check(subject_ids, y, min_per_class=2)
    train, val = train_test_split(
        ids, test_size=val_fraction, stratify=classes, random_state=random_state, shuffle=True
    )
    return np.sort(train), np.sort(val)


def stratified_kfold(
    subject_ids: ArrayLike,
    y: ArrayLike,
    *,
    n_splits: int = 5,
    random_state: int = 0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_splits`` (train_ids, val_ids) folds of subjects, stratified on ``y``.

    Every subject is in exactly one validation fold. Same parameters as
    :func:`stratified_split`, with ``n_splits`` >= 2 instead of ``val_fraction``.
    """
    if n_splits < 2:
        raise ValueError(f"n_splits must be >= 2, got {n_splits!r}")
    ids, classes = _check(subject_ids, y, min_per_class=n_splits)
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    return [(np.sort(ids[tr]), np.sort(ids[va])) for tr, va in folds.split(ids, classes)]


def _check(
    subject_ids: ArrayLike, y: ArrayLike, *, min_per_class: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validate ids and labels; return the ids and the strata."""
    ids = np.asarray(subject_ids)
    if ids.ndim != 1:
        raise ValueError(f"subject_ids must be 1-D, got shape {ids.shape}")
    classes = strata(y)
    if len(classes) != len(ids):
        raise ValueError(f"y has {len(classes)} labels for {len(ids)} subject_ids")
    repeated = pd.Series(ids).duplicated().to_numpy()
    if repeated.any():
        raise ValueError(
            f"subject_ids must be unique (one label per subject), got {ids[repeated][0].item()!r} "
            "twice: aggregate the labels per subject first"
        )
    values, counts = np.unique(classes, return_counts=True)
    if counts.min() < min_per_class:
        rare = values[np.argmin(counts)].item()
        raise ValueError(
            f"class {rare!r} of y has {counts.min()} subject(s); stratifying needs at least "
            f"{min_per_class} per class: merge rare classes or gather more subjects"
        )
    return ids, classes
