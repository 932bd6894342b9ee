import numpy as np
import pytest

from medseq.evaluation import binary_metrics, select_threshold

# Four negatives, three positives. Walking the threshold down the sorted scores:
#   t=0.9: TPR 1/3 FPR 0   | t=0.8: TPR 2/3 FPR 0   | t=0.6: TPR 2/3 FPR 1/4
#   t=0.4: TPR 1   FPR 1/4 | t=0.3: TPR 1   FPR 2/4 | ...
Y = np.array([0, 0, 0, 0, 1, 1, 1])
P = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.8, 0.9])


def test_youden_maximises_sensitivity_plus_specificity():
    assert select_threshold(Y, P, "youden") == 0.4  # J = 1 - 1/4


def test_f1():
    # t=0.8: P=1, R=2/3, F1=0.8; t=0.4: P=3/4, R=1, F1=6/7 (best); t=0.3: F1=0.75
    assert select_threshold(Y, P, "f1") == 0.4


def test_f1_can_differ_from_youden():
    y = np.array([0] * 6 + [1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.85, 0.6, 0.9])
    assert select_threshold(y, p, "youden") == 0.6  # J = 1 - 1/6
    assert select_threshold(y, p, "f1") == 0.6
    y = np.array([0, 0, 1, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    assert select_threshold(y, p, "youden") == 0.3  # J(0.3) = 1 - 1/3 ties J(0.8) = 2/3
    assert select_threshold(y, p, "f1") == 0.3  # F1(0.3) = 6/7 > F1(0.8) = 0.8


@pytest.mark.parametrize(("target", "expected"), [(0.5, 0.8), (2 / 3, 0.8), (0.9, 0.4)])
def test_sensitivity_target_gives_the_highest_threshold_reaching_it(target, expected):
    threshold = select_threshold(Y, P, "sensitivity", target=target)
    assert threshold == expected
    assert binary_metrics(Y, P, threshold)["recall"] >= target


@pytest.mark.parametrize(("target", "expected"), [(1.0, 0.8), (0.75, 0.4), (0.5, 0.3)])
def test_specificity_target_gives_the_lowest_threshold_reaching_it(target, expected):
    threshold = select_threshold(Y, P, "specificity", target=target)
    assert threshold == expected
    assert binary_metrics(Y, P, threshold)["specificity"] >= target


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "sensitivity"}, r"needs target in \(0, 1\], got None"),
        ({"method": "sensitivity", "target": 1.5}, "needs target"),
        ({"method": "youden", "target": 0.9}, "takes no target"),
        ({"method": "roc"}, "method must be one of"),
    ],
)
def test_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        select_threshold(Y, P, **kwargs)
