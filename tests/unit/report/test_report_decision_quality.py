"""Decision curve (net benefit) and missingness, checked on hand-computed examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medseq.report.data_quality import compare_missingness, missingness, static_missingness
from medseq.report.decision import decision_curve, net_benefit


def test_net_benefit_by_hand():
    y = np.array([1, 1, 0, 0, 0])
    p = np.array([0.9, 0.4, 0.6, 0.2, 0.1])
    # t = 0.5: treat {0.9, 0.6}: TP 1, FP 1 -> 1/5 - 1/5 * 1 = 0
    # t = 0.25: treat {0.9, 0.4, 0.6}: TP 2, FP 1 -> 2/5 - 1/5 * 1/3
    np.testing.assert_allclose(net_benefit(y, p, [0.5, 0.25]), [0.0, 0.4 - 0.2 / 3])
    curve = decision_curve(y, p, [0.25])
    assert curve["treat_all"].iloc[0] == pytest.approx(0.4 - 0.6 / 3)
    assert curve["treat_none"].iloc[0] == 0.0
    with pytest.raises(ValueError, match="inside"):
        net_benefit(y, p, [0.0, 0.5])


def test_missingness_counts_valid_bins_only():
    mask = np.zeros((2, 4, 2), dtype=np.float32)
    mask[0, 0, 0] = mask[0, 2, 0] = 1  # stay 0: variable a twice in 4 valid hours
    mask[1, 1, 1] = 1  # stay 1 (2 valid hours): variable b once
    frame = missingness({"mask": mask, "lengths": np.array([4, 2])}, ["a", "b"])
    assert frame.loc["a", "never_observed"] == pytest.approx(50.0)
    assert frame.loc["a", "hours_observed"] == pytest.approx(100 * 2 / 6)
    assert frame.loc["b", "hours_observed"] == pytest.approx(100 * 1 / 6)


def test_compare_missingness_flags_large_differences():
    a = pd.DataFrame({"never_observed": [10.0, 50.0]}, index=["x", "y"])
    b = pd.DataFrame({"never_observed": [12.0, 20.0]}, index=["x", "y"])
    table = compare_missingness({"internal": a, "external": b}, flag_points=10)
    assert table.index[0] == "y" and bool(table.loc["y", "flag"])
    assert not bool(table.loc["x", "flag"])
    assert table.loc["y", "max_difference"] == pytest.approx(30.0)
    static = pd.DataFrame({"Age": [1.0, np.nan], "Height": [np.nan, np.nan]})
    assert static_missingness(static)["never_observed"].tolist() == [50.0, 100.0]
