"""Subgroups: bands, ordering, CIs, and a flag where a group really differs from the rest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medseq.datasets.physionet2012 import age_bands, physionet2012_subgroups
from medseq.report.subgroups import subgroup_table


def test_age_bands_edges_and_missing():
    bands = age_bands(pd.Series([18.0, 49.9, 50.0, 64.9, 65.0, 80.0, np.nan]))
    assert bands.tolist() == ["<50", "<50", "50-64", "50-64", "65-79", "80+", "not recorded"]
    assert list(bands.cat.categories)[:4] == ["<50", "50-64", "65-79", "80+"]


def test_physionet2012_subgroups_from_descriptors():
    static = pd.DataFrame({"Age": [70.0, 30.0], "Gender": [0.0, np.nan], "ICUType": [3.0, 4.0]})
    groups = physionet2012_subgroups(static)
    assert groups["sex"].tolist() == ["female", "not recorded"]
    assert groups["ICU type"].tolist() == ["Medical", "Surgical"]


def test_a_group_where_the_model_is_blind_is_flagged():
    rng = np.random.default_rng(0)
    n = 2000
    y = (rng.random(n) < 0.2).astype(float)
    p = np.clip(0.2 + 0.5 * (y - 0.2) + rng.normal(0, 0.12, n), 0.01, 0.99)
    group = np.where(np.arange(n) < 400, "blind", "fine")
    p[:400] = rng.uniform(0.05, 0.6, 400)  # the model carries no signal in this group
    table = subgroup_table(
        y, p, {"site": pd.Series(group)}, threshold=0.3, metrics=("auroc",), n_boot=200
    )
    rows = table.set_index("group")
    assert rows.loc["blind", "value"] == pytest.approx(0.5, abs=0.08)
    assert rows.loc["blind", "lo"] < rows.loc["blind", "value"] < rows.loc["blind", "hi"]
    assert bool(rows.loc["blind", "flag"])
    assert rows.loc["blind", "diff_hi"] < 0
    assert rows.loc["fine", "value"] > 0.85


def test_small_and_one_class_groups_are_listed_not_estimated():
    y = np.array([0, 1] * 50 + [0] * 40, dtype=float)
    p = np.linspace(0.01, 0.99, y.size)
    labels = pd.Series(["a"] * 100 + ["b"] * 35 + ["c"] * 5)
    table = subgroup_table(y, p, {"g": labels}, threshold=0.5, metrics=("auroc",), n_boot=50)
    notes = table.set_index("group")["note"]
    assert notes["b"] == "one class only: not estimable"
    assert notes["c"] == "too small to estimate"
    with pytest.raises(ValueError, match="labels for"):
        subgroup_table(y, p, {"g": labels[:10]}, threshold=0.5)
