"""AAMI mapping, RR-interval features, beat segments and peak matching."""

import numpy as np
import pytest

from medseq.features.signals import beats
from medseq.schema import Signal

# AAMI EC57 / de Chazal et al. (2004), table in shared/data/mitdb_full/SOURCE.md.
EXPECTED_AAMI = {
    "N": "N", "L": "N", "R": "N", "e": "N", "j": "N",
    "A": "S", "a": "S", "J": "S", "S": "S",
    "V": "V", "E": "V", "F": "F",
    "/": "Q", "f": "Q", "Q": "Q",
}  # fmt: skip


def test_aami_mapping_table():
    assert beats.AAMI_MAP == EXPECTED_AAMI
    for symbol in ["+", "~", '"', "!", "x", "|", "[", "]"]:
        assert beats.aami_class(symbol) is None


def test_beat_annotations_drop_non_beats():
    s = Signal(
        "r", np.zeros((100, 1)), 360, ("ECG",), ("mV",), np.array([0, 10, 20, 30]),
        ("+", "N", "V", "~"),
    )  # fmt: skip
    positions, classes = beats.beat_annotations(s)
    assert positions.tolist() == [10, 20]
    assert classes.tolist() == [0, 2]


def test_rr_features_on_a_premature_beat():
    fs_hz = 100.0
    peaks = np.arange(0, 2000, 100)  # 1 s RR
    peaks[10] = 960  # premature: 0.6 s after the previous beat, 1.4 s before the next
    rr = beats.rr_features(peaks, fs_hz, local_beats=4)
    assert rr.shape == (20, len(beats.RR_FEATURES))
    pre, post, local, average, pre_ratio, post_ratio = rr[10]
    assert post_ratio == pytest.approx(1.4 / local)
    assert pre == pytest.approx(0.6) and post == pytest.approx(1.4)
    assert average == pytest.approx(np.diff(peaks).mean() / fs_hz)
    assert pre_ratio == pytest.approx(0.6 / local)
    assert rr[0, 0] == rr[0, 1] and rr[-1, 1] == rr[-1, 0]
    with pytest.raises(ValueError, match="at least 2 beats"):
        beats.rr_features(np.array([5]), fs_hz)


def test_beat_segments_skip_edges_and_align():
    x = np.arange(1000, dtype=np.float32)[:, None]
    segments, kept = beats.beat_segments(x, np.array([10, 500, 990]), 100.0)
    assert kept.tolist() == [1]
    assert segments.shape == (1, 70, 1)
    assert segments[0, 25, 0] == 500  # 0.25 s before the peak


def test_match_peaks():
    reference = np.array([100, 400, 700, 1000])
    detected = np.array([102, 398, 705, 2000])
    se, ppv = beats.match_peaks(detected, reference, tolerance=10)
    assert se == pytest.approx(0.75) and ppv == pytest.approx(0.75)
    assert beats.match_peaks(np.array([], dtype=np.int64), reference, 10) == (0.0, 0.0)


def test_detect_r_peaks_on_a_synthetic_ecg():
    fs_hz = 250.0
    t = np.arange(int(30 * fs_hz)) / fs_hz
    truth = np.arange(250, len(t) - 250, 200)  # 75 bpm
    x = np.zeros_like(t)
    for p in truth:
        x += 1.5 * np.exp(-0.5 * ((np.arange(len(t)) - p) / 3.0) ** 2)
    x += 0.02 * np.random.default_rng(0).normal(size=len(t))
    found = beats.detect_r_peaks(x[:, None], fs_hz)
    se, ppv = beats.match_peaks(found, truth, tolerance=int(0.05 * fs_hz))
    assert se >= 0.9 and ppv >= 0.9
