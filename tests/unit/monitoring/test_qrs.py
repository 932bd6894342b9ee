"""Streaming QRS detection: chunked = offline, accurate on real records, bounded state."""

from __future__ import annotations

import numpy as np
import pytest

from medseq.monitoring.qrs import StreamingQRSDetector
from medseq.sources.wfdb_records import read_record as wfdb_read


def _stream(x: np.ndarray, fs: float, sizes) -> np.ndarray:
    det, out, i = StreamingQRSDetector(fs), [], 0
    for n in sizes:
        out.append(det.push(x[i : i + n]))
        i += n
        if i >= len(x):
            break
    return np.concatenate(out)


@pytest.mark.parametrize("name", ["100", "208"])
def test_one_second_and_random_chunks_give_the_offline_peaks(mitdb, name):
    rec = mitdb(name)
    x, fs = rec.samples[: 10 * 60 * 360], rec.fs_hz
    offline = StreamingQRSDetector(fs).push(x)
    one_second = _stream(x, fs, [360] * (len(x) // 360 + 1))
    rng = np.random.default_rng(int(name))
    random_sizes = _stream(x, fs, rng.integers(1, 2500, size=len(x)))
    assert len(offline) > 500
    np.testing.assert_array_equal(one_second, offline)
    np.testing.assert_array_equal(random_sizes, offline)


def test_peaks_match_the_reference_beats_of_a_clean_record():
    from medseq.features.signals.beats import beat_annotations, match_peaks
    from medseq.paths import dataset_dir

    signal = wfdb_read(dataset_dir("mitdb_full"), "100")
    peaks = StreamingQRSDetector(signal.fs_hz).push(signal.samples[:, 0])
    reference, _ = beat_annotations(signal)
    se, ppv = match_peaks(peaks, reference, tolerance=round(0.15 * signal.fs_hz))
    assert se > 0.995 and ppv > 0.995
    # the R peak, not the integrator's maximum: most within 30 ms of the annotation
    near = np.abs(peaks[:, None] - reference[None, :]).min(axis=1)
    assert np.median(near) <= 0.03 * signal.fs_hz


def test_buffers_stay_bounded_however_long_the_stream(mitdb):
    rec = mitdb("101")
    det = StreamingQRSDetector(rec.fs_hz)
    sizes = []
    for i in range(0, len(rec.samples), 360):
        det.push(rec.samples[i : i + 360])
        sizes.append(len(det._mwi))
    assert max(sizes) <= det.keep + 360
    assert sizes[-1] <= det.keep + 360 and len(det._pending) <= 64


def test_flat_signal_gives_no_peaks_and_bad_rate_is_refused():
    det = StreamingQRSDetector(360.0)
    assert len(det.push(np.zeros(360 * 10))) == 0
    with pytest.raises(ValueError, match="fs_hz must be > 0"):
        StreamingQRSDetector(0.0)
