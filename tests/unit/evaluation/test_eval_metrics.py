import numpy as np
import pytest
from sklearn import metrics as skm

from medseq.evaluation import BINARY_METRICS, binary_metrics, regression_metrics

Y = np.array([0, 0, 0, 0, 1, 1, 1, 0, 1, 0])
P = np.array([0.1, 0.4, 0.35, 0.8, 0.7, 0.45, 0.9, 0.2, 0.55, 0.6])


def test_binary_metrics_equal_scikit_learn():
    got = binary_metrics(Y, P, threshold=0.5)
    pred = (P >= 0.5).astype(int)
    assert tuple(got) == BINARY_METRICS
    assert got["auroc"] == skm.roc_auc_score(Y, P)
    assert got["auprc"] == skm.average_precision_score(Y, P)
    assert got["accuracy"] == skm.accuracy_score(Y, pred)
    assert got["balanced_accuracy"] == skm.balanced_accuracy_score(Y, pred)
    assert got["precision"] == skm.precision_score(Y, pred)
    assert got["recall"] == skm.recall_score(Y, pred)
    assert got["f1"] == skm.f1_score(Y, pred)
    assert got["brier"] == skm.brier_score_loss(Y, P)


def test_specificity_by_hand():
    # threshold 0.5: negatives 0.1 0.4 0.35 0.8 0.2 0.6 -> 4 below (TN), 2 above (FP)
    assert binary_metrics(Y, P)["specificity"] == pytest.approx(4 / 6)
    # positives 0.7 0.45 0.9 0.55 -> 3 of 4 found
    assert binary_metrics(Y, P)["recall"] == pytest.approx(3 / 4)
    # a sample exactly at the threshold is positive
    assert binary_metrics([0, 1], [0.5, 0.5])["specificity"] == 0.0


def test_precision_is_zero_when_nothing_is_positive():
    assert binary_metrics(Y, P, threshold=1.0)["precision"] == 0.0


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        (Y, P[:-1], "y_true has 10 samples but y_prob has 9"),
        (Y, np.where(np.arange(10) == 3, np.nan, P), r"y_prob has 1 NaN .* index 3"),
        (np.ones(10), P, r"y_true holds only class 1 \(10 samples\): AUROC and AUPRC"),
        (Y * 2, P, "y_true must hold 0/1 labels"),
        (Y, P * 4 - 2, "apply a sigmoid to logits first"),
        ([], [], "y_true is empty"),
        (Y, np.stack([P, P]), "y_prob must be 1-D"),
    ],
)
def test_binary_errors_name_the_problem(y, p, message):
    with pytest.raises(ValueError, match=message):
        binary_metrics(y, p)


def test_threshold_is_checked():
    with pytest.raises(ValueError, match="threshold must be in"):
        binary_metrics(Y, P, threshold=50)


def test_regression_metrics_equal_scikit_learn():
    y = np.array([3.0, -0.5, 2.0, 7.0, 4.2])
    p = np.array([2.5, 0.0, 2.0, 8.0, 3.9])
    got = regression_metrics(y, p)
    assert got["mse"] == skm.mean_squared_error(y, p)
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)))
    assert got["mae"] == skm.mean_absolute_error(y, p)
    assert got["r2"] == skm.r2_score(y, p)
    with pytest.raises(ValueError, match="at least 2 samples"):
        regression_metrics([1.0], [1.0])
    with pytest.raises(ValueError, match="y_pred has 1 NaN"):
        regression_metrics(y, [1, 2, np.nan, 4, 5])
