"""ECG tasks: CinC 2017 rhythm classes and the MIT-BIH inter-patient beat split.

CinC 2017 (Clifford et al. 2017): one label per recording among N (normal sinus rhythm),
A (atrial fibrillation), O (other rhythm), ~ (noisy); the challenge score is the mean F1 of
N, A and O (noisy recordings count as errors when confused, but their F1 is not averaged).

MIT-BIH (de Chazal et al. 2004): beats grouped into the AAMI EC57 classes and evaluated
inter-patient, training on DS1 and testing on DS2, with the four paced records excluded.
A record is the subject and no record is on both sides. Records 201 (DS1) and 202 (DS2)
come from one patient, so strictly that patient is on both sides; the published lists are
kept unchanged so that results compare with the literature.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from medseq.features.signals.beats import AAMI_CLASSES, beat_annotations
from medseq.schema import DataError, Signal

CINC2017_CLASSES: tuple[str, ...] = ("N", "A", "O", "~")
CHALLENGE_CLASSES: tuple[str, ...] = ("N", "A", "O")

MITBIH_DS1: tuple[str, ...] = (
    "101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122",
    "124", "201", "203", "205", "207", "208", "209", "215", "220", "223", "230",
)  # fmt: skip
MITBIH_DS2: tuple[str, ...] = (
    "100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210",
    "212", "213", "214", "219", "221", "222", "228", "231", "232", "233", "234",
)  # fmt: skip
MITBIH_PACED: tuple[str, ...] = ("102", "104", "107", "217")


def cinc2017_labels(labels: pd.Series) -> pd.Series:
    """Class indices 0..3 (order :data:`CINC2017_CLASSES`) for a Series of N/A/O/~ labels.

    Raises
    ------
    DataError
        Naming the first record whose label is not one of the four classes.
    """
    codes = labels.map({c: i for i, c in enumerate(CINC2017_CLASSES)})
    if codes.isna().any():
        record = codes.index[codes.isna()][0]
        raise DataError(f"record {record}: label {labels[record]!r} not in {CINC2017_CLASSES}")
    return codes.astype(np.int64).rename("y")


def challenge_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """CinC 2017 score: mean of the F1 of classes N, A, O (indices 0, 1, 2) over 4 classes."""
    scores = f1_score(y_true, y_pred, labels=[0, 1, 2], average=None, zero_division=0.0)
    return float(np.mean(scores))


def mitbih_split() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """de Chazal DS1 (train) and DS2 (test) record lists; no record is on both sides."""
    overlap = set(MITBIH_DS1) & set(MITBIH_DS2)
    if overlap or set(MITBIH_PACED) & (set(MITBIH_DS1) | set(MITBIH_DS2)):
        raise RuntimeError(f"DS1/DS2/paced lists overlap: {sorted(overlap)}")
    return MITBIH_DS1, MITBIH_DS2


def beat_labels(signal: Signal) -> tuple[np.ndarray, np.ndarray]:
    """R-peak positions and AAMI class indices (order :data:`AAMI_CLASSES`) of a record."""
    return beat_annotations(signal)


def aami_counts(classes: np.ndarray) -> dict[str, int]:
    """Number of beats per AAMI class, for reporting against de Chazal's table."""
    counts = np.bincount(classes, minlength=len(AAMI_CLASSES))
    return {c: int(n) for c, n in zip(AAMI_CLASSES, counts, strict=True)}
