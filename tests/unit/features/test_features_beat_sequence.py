"""Per-beat feature sequences and per-step beat labels."""

import logging

import numpy as np
import pytest

from medseq.features.signals import beat_sequence as bs
from medseq.features.signals.beats import RR_FEATURES


def test_beat_feature_sequence_shape_and_rr_columns():
    fs_hz = 360.0
    x = np.random.default_rng(0).normal(size=(3600, 2)).astype(np.float32)
    peaks = np.array([50, 400, 800, 1200, 1600, 3500])
    features, kept = bs.beat_feature_sequence(x, peaks, fs_hz)
    assert kept.tolist() == [1, 2, 3, 4]  # first and last windows cross the edges
    n_segment = round(0.7 * 90)
    assert features.shape == (4, 2 * n_segment + len(RR_FEATURES))
    assert features[0, -6] == pytest.approx(350 / fs_hz)  # pre-RR of beat 1
    assert features[-1, -5] == pytest.approx(1900 / fs_hz)  # post-RR of beat 4


def test_step_labels_place_beats_and_report_collisions(caplog):
    labels = bs.step_labels(np.array([5, 40, 41, 95]), np.array([0, 2, 1, 3]), 100, 32)
    assert labels.shape == (4,)
    assert labels[0] == 0 and labels[2] == 3 and np.isnan(labels[3])
    with caplog.at_level(logging.WARNING):
        labels = bs.step_labels(np.array([33, 40]), np.array([2, 1]), 100, 32)
    assert labels[1] == 1 and "share a step" in caplog.text
    with pytest.raises(ValueError, match="samples_per_step"):
        bs.step_labels(np.array([1]), np.array([0]), 10, 0)
