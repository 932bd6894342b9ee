"""The physionet2019 dataset spec on real patients of both hospital systems (a few hundred,
unpacked into the official folder layout): hourly labels, causal features, protocols, sites."""

from __future__ import annotations

import numpy as np
import pytest

from data_slices import unpack_physionet2019
from medseq.datasets import get_dataset
from medseq.datasets.physionet2019 import HORIZON_HOURS
from medseq.evaluation.utility import hourly_utility

N_PER_SET = 150


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """The first N_PER_SET patients of each archive, plus every septic one among the next 300."""
    return unpack_physionet2019(
        tmp_path_factory.mktemp("sepsis2019"), N_PER_SET, scan=N_PER_SET + 300
    )


@pytest.fixture(scope="module")
def data(root):
    return get_dataset("physionet2019").read(root)


def test_hourly_labels_are_the_rows_of_the_first_72_hours(data):
    labels = get_dataset("physionet2019").labels("sepsis_6h", data)
    assert labels.shape == (len(data.static), HORIZON_HOURS)
    for sid in labels.index[::37]:
        rows = data.labels.loc[data.labels["subject_id"] == sid, "sepsis_label"].to_numpy()
        n = min(len(rows), HORIZON_HOURS)
        np.testing.assert_array_equal(labels.loc[sid].to_numpy()[:n], rows[:n])
        assert labels.loc[sid].iloc[n:].isna().all()
    assert (np.nanmax(labels.to_numpy(), axis=1) == 1).sum() > 30  # septic stays of A and B


def test_grid_clock_starts_at_the_first_row(data):
    clock = data.events[data.events["code"] == "ICULOS"]
    first = clock.groupby("subject_id")["time"].min()
    assert (first == 0.0).all() and len(first) == len(data.static)
    late = data.labels.groupby("subject_id")["iculos"].min() > 1  # SOURCE.md: some start late
    assert late.any()


def test_features_at_hour_t_use_hours_up_to_t_only(data):
    spec = get_dataset("physionet2019")
    ids = data.static.index.to_numpy()
    featurizer = spec.fit_featurizer({}, data, ids[::2])
    full = spec.transform(featurizer, data, ids[1::2])
    cut = 10
    past = data.events[data.events["time"] <= cut]
    truncated = featurizer.transform(past, data.static, ids[1::2])
    np.testing.assert_array_equal(full["values"][:, : cut + 1], truncated["values"][:, : cut + 1])
    assert (full["lengths"] > cut + 1).any()
    # the last hour of the window never holds the next hour's data (the grid's right edge)
    window = data.events[data.events["time"] < HORIZON_HOURS]
    inside = featurizer.transform(window, data.static, ids[1::2])
    np.testing.assert_array_equal(full["values"], inside["values"])
    # every charted hour of the window is inside lengths (the ICULOS event of each hour)
    hours = data.labels.groupby("subject_id").size().reindex(ids[1::2]).to_numpy()
    np.testing.assert_array_equal(full["lengths"], np.minimum(hours, HORIZON_HOURS))
    with pytest.raises(ValueError, match="n_steps = 48"):
        spec.fit_featurizer({"n_steps": 48}, data, ids[::2])


def test_protocols_split_by_patient_and_by_hospital_system(data):
    spec = get_dataset("physionet2019")
    labels = spec.labels("sepsis_6h", data)
    system = data.static["hospital"].astype(str)
    internal = spec.protocol("internal")(spec, data, labels)
    assert len(internal.folds) == 5
    vals = np.concatenate([va for _, va in internal.folds])
    assert sorted(vals) == sorted(labels.index)  # every patient validated exactly once
    assert {system[internal.folds[0][1]].nunique()} == {2}  # both systems in each fold
    a_to_b = spec.protocol("external_a_to_b")(spec, data, labels)
    (train, val), test = a_to_b.folds[0], a_to_b.test
    assert (system[train] == "A").all() and (system[val] == "A").all()
    assert sorted(test) == sorted(system.index[system == "B"])
    b_to_a = spec.protocol("external_b_to_a")(spec, data, labels)
    assert (system[b_to_a.test] == "A").all()
    sites = spec.partitions["hospital"](data, labels, n_sites=2, alpha=0.0, seed=0)
    assert list(sites.cat.categories) == ["A", "B"]
    assert (sites.astype(str) == system.reindex(labels.index).astype(str)).all()
    assert sorted(sites.index) == sorted(labels.index)


def test_metrics_give_utility_one_for_the_ideal_alarms(data):
    spec = get_dataset("physionet2019")
    labels = spec.labels("sepsis_6h", data).to_numpy()
    scored = ~np.isnan(labels)
    ideal = np.zeros_like(labels)
    ideal[scored] = hourly_utility(labels[scored], scored.sum(axis=1)).best
    prob = np.stack([1 - ideal, ideal], axis=2)
    got = spec.metrics("sepsis_6h", labels, prob)
    assert got["utility@0.5"] == pytest.approx(1.0)
    assert got["false_alarms_per_100_patient_days@0.5"] == 0.0
    never = spec.metrics("sepsis_6h", labels, np.stack([np.ones_like(ideal), 0 * ideal], 2))
    assert never["utility@0.5"] == 0.0 and never["detected@0.5"] == 0.0


def test_alarm_threshold_is_the_utility_best_on_validation(data):
    """The spec's alarm threshold maximises the utility on the predictions it is given, and
    the metrics taken at it say so (a noisy risk: the best threshold is not 0.5)."""
    spec = get_dataset("physionet2019")
    labels = spec.labels("sepsis_6h", data).to_numpy()
    scored = ~np.isnan(labels)
    ideal = np.zeros_like(labels)
    ideal[scored] = hourly_utility(labels[scored], scored.sum(axis=1)).best
    noise = np.random.default_rng(0).uniform(0.0, 0.6, size=labels.shape)
    risk = np.clip(0.3 * ideal + noise, 0.0, 1.0)
    prob = np.stack([1 - risk, risk], axis=2)
    chosen = spec.alarm_threshold("sepsis_6h", labels, prob)
    best = spec.metrics("sepsis_6h", labels, prob, threshold=chosen)["utility"]
    for other in (0.1, 0.3, 0.5, 0.7, 0.9):
        assert best >= spec.metrics("sepsis_6h", labels, prob, threshold=other)["utility"]
    assert best > spec.metrics("sepsis_6h", labels, prob)["utility@0.5"]
