"""ECG tasks: CinC 2017 label codes and score, MIT-BIH DS1/DS2 lists."""

import numpy as np
import pandas as pd
import pytest

from medseq.schema import DataError
from medseq.tasks import ecg


def test_cinc2017_labels_and_error():
    labels = pd.Series(["N", "A", "O", "~"], index=["a", "b", "c", "d"])
    assert ecg.cinc2017_labels(labels).tolist() == [0, 1, 2, 3]
    with pytest.raises(DataError, match="record b: label 'X'"):
        ecg.cinc2017_labels(pd.Series(["N", "X"], index=["a", "b"]))


def test_challenge_f1_ignores_the_noisy_class_f1():
    y_true = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    assert ecg.challenge_f1(y_true, y_true) == 1.0
    y_pred = np.array([0, 0, 1, 1, 2, 2, 0, 0])  # noisy recordings called normal
    f1_n = 2 * 2 / (2 * 2 + 2)  # precision 0.5, recall 1
    assert ecg.challenge_f1(y_true, y_pred) == pytest.approx((f1_n + 1 + 1) / 3)


def test_mitbih_split_is_the_published_one():
    ds1, ds2 = ecg.mitbih_split()
    assert len(ds1) == 22 and len(ds2) == 22
    assert not set(ds1) & set(ds2)
    assert not set(ecg.MITBIH_PACED) & (set(ds1) | set(ds2))
    assert "101" in ds1 and "100" in ds2


def test_aami_counts():
    assert ecg.aami_counts(np.array([0, 0, 2, 4])) == {"N": 2, "S": 0, "V": 1, "F": 0, "Q": 1}
