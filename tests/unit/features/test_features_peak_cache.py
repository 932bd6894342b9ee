"""The on-disk R-peak cache: a second featurizer reads what the first detected, a changed
recording is detected again, and a broken or disabled cache only costs the detection."""

import logging

import numpy as np
import pytest

from medseq.features.signals import beats, peak_cache
from medseq.features.signals.beat_featurizer import BeatFeaturizer
from medseq.schema import Signal

FS = 300.0


def _ecg(record_id: str = "r", shift: float = 0.0) -> Signal:
    t = np.arange(round(20 * FS)) / FS
    x = np.zeros_like(t)
    for p in np.arange(0.5 + shift, 19.5, 0.8):
        x += np.exp(-(((t - p) / 0.012) ** 2))
    x += 0.01 * np.random.default_rng(0).standard_normal(len(t))
    return Signal(record_id, x[:, None].astype(np.float32), FS, ("ECG",), ("mV",))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(peak_cache.CACHE_ENV, str(tmp_path))
    return tmp_path / "r_peaks"


def _no_detection(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("detect_r_peaks called although the peaks are cached")

    monkeypatch.setattr(beats, "detect_r_peaks", fail)


def test_second_featurizer_reads_the_cached_peaks(cache, monkeypatch):
    signal = _ecg()
    first = BeatFeaturizer(peaks="xqrs").peak_positions(signal)
    assert len(first) == 24 and len(list(cache.glob("*.npy"))) == 1
    _no_detection(monkeypatch)
    again = BeatFeaturizer(peaks="xqrs").peak_positions(signal)
    np.testing.assert_array_equal(again, first)
    assert again.dtype == np.int64
    # a recording with other samples (here: the same beats 0.1 s later) is a new key
    with pytest.raises(AssertionError, match="although the peaks are cached"):
        BeatFeaturizer(peaks="xqrs").peak_positions(_ecg("r", shift=0.1))


def test_key_depends_on_samples_and_rate_not_on_the_record_name():
    lead = _ecg().samples
    assert peak_cache.peak_key(lead, FS) == peak_cache.peak_key(lead.copy(), FS)
    assert peak_cache.peak_key(lead, FS) != peak_cache.peak_key(lead, 250.0)
    assert peak_cache.peak_key(lead, FS) != peak_cache.peak_key(lead[:-1], FS)


def test_disabled_cache_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(peak_cache.CACHE_ENV, "none")
    assert peak_cache.cache_dir() is None
    BeatFeaturizer(peaks="xqrs").peak_positions(_ecg())
    assert peak_cache.load_peaks("anything") is None
    assert not any(tmp_path.iterdir())


def test_corrupt_cache_file_is_detected_again(cache, caplog):
    signal = _ecg()
    first = BeatFeaturizer(peaks="xqrs").peak_positions(signal)
    (path,) = cache.glob("*.npy")
    path.write_bytes(b"not a numpy file")
    with caplog.at_level(logging.WARNING, logger="medseq.features.signals.peak_cache"):
        again = BeatFeaturizer(peaks="xqrs").peak_positions(signal)
    assert "unreadable" in caplog.text
    np.testing.assert_array_equal(again, first)
    np.save(path, np.array([0.5, 1.5]))  # floats are not peak positions
    assert peak_cache.load_peaks(path.stem) is None


def test_unwritable_cache_folder_only_costs_the_detection(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv(peak_cache.CACHE_ENV, str(blocker))
    peaks = BeatFeaturizer(peaks="xqrs").peak_positions(_ecg())
    assert len(peaks) == 24
