"""The Sleep-EDF spec on toy nights: the window around sleep, gaps, LOSO, crops, kappa."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseq.datasets import sleepedf
from medseq.datasets.registry import StageUnsupported, get_dataset
from medseq.datasets.sequence_crop import SequenceCropAugment
from medseq.schema import ReadReport
from medseq.sources.sleepedf_features import MOVEMENT, Night


def toy_night(night_id: int, n_wake: int = 100) -> Night:
    """Wake, 20 epochs of N2 with one movement epoch dropped in the middle, wake again."""
    hypnogram = np.r_[np.zeros(n_wake), np.full(10, 2), MOVEMENT, np.full(10, 2), np.zeros(n_wake)]
    epoch = np.flatnonzero(hypnogram >= 0)
    stages = hypnogram[epoch].astype(np.int64)
    features = np.random.default_rng(night_id).normal(size=(len(epoch), 72))
    return Night(night_id, (night_id - 4000) // 10, features, stages, epoch, hypnogram.astype(int))


def toy_data(ids=(4001, 4002, 4011, 4012, 4021), gaps="join") -> sleepedf.SleepEdfData:
    report = ReadReport(source="toy")
    nights = {i: toy_night(i) for i in ids}
    rows, steps = {}, {}
    for i, night in nights.items():
        rows[i], steps[i] = sleepedf._window(night, sleepedf.EDGE_MIN, gaps, report)
    n_steps = max(int(s[-1]) + 1 for s in steps.values())
    return sleepedf.SleepEdfData(nights, rows, steps, n_steps, report)


def test_the_window_keeps_30_minutes_of_wake_on_each_side_in_clock_time():
    night = toy_night(4001)
    rows = sleepedf.sleep_window(night)
    # sleep spans epochs 100..120; 60 epochs either side: epochs 40..180, minus the movement one
    assert night.epoch[rows][[0, -1]].tolist() == [40, 180] and len(rows) == 140
    data = toy_data()
    assert data.report.counts["epochs outside the window around sleep (trimmed)"] == 5 * 80
    assert data.report.counts["movement epochs inside the window (join)"] == 5


def test_gaps_join_or_mask_and_the_labels_line_up_with_the_inputs():
    joined, masked = toy_data(gaps="join"), toy_data(gaps="mask")
    assert (joined.n_steps, masked.n_steps) == (140, 141)
    labels = sleepedf._labels("sleep_stage", masked)
    assert labels.shape == (5, 141) and np.isnan(labels.iloc[0, 70])  # the movement epoch
    featurizer = sleepedf.fit_featurizer({"crop_epochs": 50}, masked, labels.index[:3])
    arrays = sleepedf.transform(featurizer, masked, labels.index.to_numpy())
    assert arrays["values"].shape == (5, 141, 18) and arrays["lengths"].tolist() == [141] * 5
    assert not arrays["values"][0, 70].any()
    with pytest.raises(ValueError, match="unknown Sleep-EDF task"):
        sleepedf._labels("apnea", masked)
    with pytest.raises(ValueError, match=r"\[features\] \(sleepedf\).*window"):
        sleepedf.fit_featurizer({"window": 3}, masked, labels.index[:3])


def test_loso_holds_both_nights_of_a_subject_out_together():
    data = toy_data()
    split = sleepedf.loso(None, data, sleepedf._labels("sleep_stage", data))
    assert [v.tolist() for _, v in split.folds] == [[4001, 4002], [4011, 4012], [4021]]
    assert sleepedf._subjects("sleep_stage", data, np.array([4092, 4001])).tolist() == [9, 0]


def test_a_crop_cuts_inputs_and_per_step_labels_with_the_same_window():
    values = torch.arange(2 * 10, dtype=torch.float32).reshape(2, 10, 1)
    y = torch.arange(2 * 10, dtype=torch.float32).reshape(2, 10) % 5
    batch = {"values": values, "lengths": torch.tensor([10, 3]), "y": y}
    out = SequenceCropAugment(4)(batch, torch.Generator().manual_seed(0))
    assert out["values"].shape == (2, 4, 1) and out["lengths"].tolist() == [4, 3]
    np.testing.assert_array_equal(out["values"][0, :, 0].numpy() % 5, out["y"][0].numpy())
    assert torch.isnan(out["y"][1, 3]) and out["values"][1, 3, 0] == 0
    with pytest.raises(ValueError, match="per-step labels"):
        SequenceCropAugment(4)({**batch, "y": y[:, 0]}, torch.Generator())


def test_kappa_and_the_stages_the_spec_refuses():
    y = np.array([[0, 1, 2, np.nan]])
    prob = np.eye(5)[[0, 1, 3, 0]][None]
    kappa = sleepedf.metrics("sleep_stage", y, prob)["kappa"]
    assert 0.0 < kappa < 1.0
    spec = get_dataset("sleepedf")
    with pytest.raises(StageUnsupported, match="epochs after it"):
        spec.require("streaming", "streaming")
