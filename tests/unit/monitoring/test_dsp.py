"""The detector's numpy signal processing equals scipy.signal, and is chunk-invariant.

``medseq.monitoring.dsp`` replaces ``scipy.signal`` (a second of start-up); these tests
hold it to scipy's outputs on real MIT-BIH signal and to bit-equal streamed and offline
outputs for chunks of random sizes.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.signal

from medseq.monitoring.dsp import (
    ModalIIR,
    PolyphaseResampler,
    StreamingFIR,
    butter_bandpass,
    firwin_kaiser,
    max_filter,
)


def _chunks(f, x: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 900))
        parts.append(f(x[i : i + n]))
        i += n
    return np.concatenate(parts)


@pytest.mark.parametrize(
    ("low", "high", "fs"), [(5.0, 15.0, 360.0), (0.5, 40.0, 360.0), (5.0, 15.0, 300.0)]
)
def test_bandpass_equals_scipy_sosfilt_and_streams_exactly(mitdb, low, high, fs):
    x = mitdb("100").samples[:60_000]
    zeros, poles, gain = butter_bandpass(2, low, high, fs)
    z_ref, p_ref, k_ref = scipy.signal.butter(2, [low, high], "bandpass", fs=fs, output="zpk")
    np.testing.assert_allclose(np.sort_complex(poles), np.sort_complex(p_ref), atol=1e-12)
    np.testing.assert_allclose(np.sort_complex(zeros), np.sort_complex(z_ref), atol=1e-12)
    assert gain == pytest.approx(k_ref, rel=1e-12)
    sos = scipy.signal.butter(2, [low, high], "bandpass", fs=fs, output="sos")
    reference, _ = scipy.signal.sosfilt(sos, x, zi=scipy.signal.sosfilt_zi(sos) * x[0])
    f = ModalIIR(zeros, poles, gain)
    offline = f(x)
    np.testing.assert_allclose(offline, reference, atol=1e-9 * np.abs(reference).max())
    f.reset()
    assert np.array_equal(_chunks(f, x, seed=int(fs)), offline)  # bit for bit


def test_fir_equals_lfilter_and_streams_exactly(mitdb):
    x = mitdb("200").samples[:20_000]
    for taps in (np.array([2.0, 1.0, 0.0, -1.0, -2.0]) * 45.0, np.full(54, 1 / 54)):
        f = StreamingFIR(taps)
        offline = f(x)
        np.testing.assert_allclose(offline, scipy.signal.lfilter(taps, [1.0], x), atol=1e-12)
        f.reset()
        assert np.array_equal(_chunks(f, x, seed=3), offline)


def test_resampler_equals_resample_poly(mitdb):
    window = scipy.signal.firwin(2 * 10 * 36 + 1, 1 / 36, window=("kaiser", 5.0))
    np.testing.assert_allclose(firwin_kaiser(721, 1 / 36, beta=5.0), window, atol=1e-15)
    x = mitdb("100").samples[1000:1252]
    resample = PolyphaseResampler(50, 360, window, n_in=252)
    expected = scipy.signal.resample_poly(x, 5, 36, window=window)
    np.testing.assert_allclose(resample(x), expected, atol=1e-12)
    with pytest.raises(ValueError, match="built for 252 samples, got 10"):
        resample(x[:10])


def test_max_filter_equals_ndimage():
    import scipy.ndimage

    x = np.random.default_rng(0).normal(size=500)
    h = 27
    np.testing.assert_array_equal(
        max_filter(x, 2 * h + 1), scipy.ndimage.maximum_filter1d(x, 2 * h + 1)[h:-h]
    )


def test_the_detector_imports_no_scipy():
    code = (
        "import sys, medseq.monitoring.detector, medseq.monitoring.replay\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'scipy', 'torch'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
