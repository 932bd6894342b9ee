"""Waveform preprocessing: filter response, resampling, normalisation, windows, crops."""

import numpy as np
import pytest

from medseq.features.signals import signal as sig
from medseq.schema import Signal

FS_HZ = 360.0


def _tone(freq_hz: float, seconds: float = 20.0) -> np.ndarray:
    t = np.arange(int(seconds * FS_HZ)) / FS_HZ
    return np.sin(2 * np.pi * freq_hz * t)[:, None]


def _gain(freq_hz: float) -> float:
    x = _tone(freq_hz)
    y = sig.bandpass_filter(x, FS_HZ, low_hz=0.5, high_hz=40.0)
    middle = slice(len(x) // 4, 3 * len(x) // 4)  # away from edge effects
    return float(np.std(y[middle]) / np.std(x[middle]))


def test_bandpass_passes_the_qrs_band_and_rejects_baseline_and_mains():
    assert _gain(10.0) == pytest.approx(1.0, abs=0.02)
    assert _gain(0.05) < 0.01  # baseline wander
    assert _gain(60.0) < 0.05  # mains
    assert _gain(120.0) < 0.01


def test_bandpass_is_zero_phase_and_keeps_shape():
    x = np.zeros((3600, 2))
    x[1800, :] = 1.0
    y = sig.bandpass_filter(x, FS_HZ)
    assert y.shape == x.shape and y.dtype == np.float32
    assert int(np.argmax(np.abs(y[:, 0]))) == 1800


def test_bandpass_rejects_band_above_nyquist():
    with pytest.raises(ValueError, match="fs_hz/2"):
        sig.bandpass_filter(np.zeros((100, 1)), 60.0, high_hz=40.0)


@pytest.mark.parametrize(
    ("fs_in", "fs_out", "n_in"), [(360, 300, 3600), (300, 360, 9001), (360, 125, 650)]
)
def test_resample_length_and_content(fs_in, fs_out, n_in):
    t = np.arange(n_in) / fs_in
    x = np.sin(2 * np.pi * 2.0 * t)[:, None]
    y = sig.resample(x, fs_in, fs_out)
    assert len(y) == int(np.ceil(n_in * fs_out / fs_in))
    t_out = np.arange(len(y)) / fs_out
    middle = slice(len(y) // 4, 3 * len(y) // 4)
    np.testing.assert_allclose(y[middle, 0], np.sin(2 * np.pi * 2.0 * t_out)[middle], atol=0.02)


def test_resample_signal_moves_annotations():
    s = Signal(
        "r", np.zeros((3600, 1)), 360, ("ECG",), ("mV",), np.array([0, 360, 3599]), ("N",) * 3
    )
    out = sig.resample_signal(s, 300)
    assert out.fs_hz == 300 and out.n_samples == 3000
    assert out.annotation_samples.tolist() == [0, 300, 2999]


def test_normalize_per_record_is_robust_to_spikes():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 2.0, size=(10000, 2))
    x[::1000, 0] = 1e4  # artefact spikes
    z = sig.normalize_per_record(x)
    assert np.median(z, axis=0) == pytest.approx([0.0, 0.0], abs=0.05)
    iqr = np.subtract(*np.percentile(z, [75, 25], axis=0))
    assert iqr == pytest.approx([1.349, 1.349], rel=0.05)
    flat = sig.normalize_per_record(np.ones((10, 1)))
    assert np.all(flat == 0)


@pytest.mark.parametrize(
    ("n", "window_s", "overlap_s", "expected"),
    [(3000, 1.0, 0.0, 10), (3000, 1.0, 0.5, 19), (3100, 1.0, 0.0, 10), (299, 1.0, 0.0, 0)],
)
def test_fixed_window_counts(n, window_s, overlap_s, expected):
    x = np.arange(n, dtype=np.float32)[:, None]
    w = sig.fixed_windows(x, 300.0, window_s=window_s, overlap_s=overlap_s)
    assert w.shape == (expected, 300, 1)
    if expected > 1:
        step = int((window_s - overlap_s) * 300)
        assert w[1, 0, 0] == step and w[0, -1, 0] == 299


def test_fixed_windows_rejects_overlap_not_below_window():
    with pytest.raises(ValueError, match="overlap_s"):
        sig.fixed_windows(np.zeros((10, 1)), 10.0, window_s=1.0, overlap_s=1.0)


def test_random_crop_is_seeded_and_pads_short_records():
    x = np.arange(1000, dtype=np.float32)[:, None]
    a = sig.random_crop(x, 100, np.random.default_rng(3))
    b = sig.random_crop(x, 100, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (100, 1) and np.all(np.diff(a[:, 0]) == 1)
    short = sig.random_crop(x[:10], 50, np.random.default_rng(0))
    assert short.shape == (50, 1) and np.all(short[10:] == 0)


def test_pad_batch_pads_cuts_and_checks_channels():
    records = [np.ones((5, 1)), 2 * np.ones((3, 1))]
    values, lengths = sig.pad_batch(records)
    assert values.shape == (2, 5, 1) and lengths.tolist() == [5, 3]
    assert values[1, 3:].sum() == 0 and values[1, :3].sum() == 6
    values, lengths = sig.pad_batch(records, max_samples=4)
    assert values.shape == (2, 4, 1) and lengths.tolist() == [4, 3]
    with pytest.raises(ValueError, match="channel count"):
        sig.pad_batch([np.ones((5, 1)), np.ones((5, 2))])
    with pytest.raises(ValueError, match="at least one"):
        sig.pad_batch([])
