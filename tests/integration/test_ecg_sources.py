"""ECG readers and beat features on the real CinC 2017 and MIT-BIH files."""

from collections import Counter

import numpy as np
import pytest

from medseq.features.signals import beats
from medseq.sources import physionet2017, wfdb_records
from medseq.tasks import ecg


@pytest.fixture(scope="session")
def cinc2017_dir():
    from medseq.paths import dataset_dir

    return dataset_dir("physionet2017")


@pytest.fixture(scope="session")
def mitdb_dir():
    from medseq.paths import dataset_dir

    return dataset_dir("mitdb_full")


def test_cinc2017_all_present_recordings(cinc2017_dir):
    data = physionet2017.read(cinc2017_dir)
    assert len(data.signals) == 6999 and len(data.labels) == 6999
    assert data.report.counts == {"labels without a recording": 8528 - 6999}
    lengths = [s.n_samples for s in data.signals]
    assert min(lengths) >= 2714 and max(lengths) <= 18286  # 9 s to 61 s at 300 Hz
    assert {s.fs_hz for s in data.signals} == {300.0}
    # SOURCE.md: class counts over the first part (A00, 999 recordings) and all 8528 labels.
    first_part = data.labels[data.labels.index < "A01000"]
    assert Counter(first_part) == {"N": 595, "A": 99, "O": 277, "~": 28}
    reference = physionet2017.read_reference(cinc2017_dir / "REFERENCE-v3.csv")
    assert Counter(reference) == {"N": 5076, "A": 758, "O": 2415, "~": 279}
    assert ecg.cinc2017_labels(data.labels).isin([0, 1, 2, 3]).all()


def test_mitbih_record_100(mitdb_dir):
    s = wfdb_records.read_record(mitdb_dir, "100")
    assert s.samples.shape == (650_000, 2) and s.fs_hz == 360.0
    assert s.channel_names == ("MLII", "V5") and s.units == ("mV", "mV")
    assert len(s.annotation_samples) == 2274  # 2273 beats + one rhythm annotation
    positions, classes = ecg.beat_labels(s)
    assert len(positions) == 2273
    assert ecg.aami_counts(classes) == {"N": 2239, "S": 33, "V": 1, "F": 0, "Q": 0}


def test_mitbih_aami_counts_reproduce_de_chazal(mitdb_dir):
    # SOURCE.md / de Chazal et al. (2004) table 1, per split.
    expected = {
        "DS1": {"N": 45866, "S": 944, "V": 3788, "F": 415, "Q": 8},
        "DS2": {"N": 44259, "S": 1837, "V": 3221, "F": 388, "Q": 7},
    }
    for name, records in zip(("DS1", "DS2"), ecg.mitbih_split(), strict=True):
        classes = [
            ecg.beat_labels(wfdb_records.read_record(mitdb_dir, r, channels=[0]))[1]
            for r in records
        ]
        assert ecg.aami_counts(np.concatenate(classes)) == expected[name]


@pytest.mark.parametrize("record", ["100", "119"])
def test_r_peak_detection_agrees_with_reference_beats(mitdb_dir, record):
    s = wfdb_records.read_record(mitdb_dir, record)
    n = int(5 * 60 * s.fs_hz)  # first five minutes
    found = beats.detect_r_peaks(s.samples[:n], s.fs_hz)
    positions, _ = ecg.beat_labels(s)
    reference = positions[positions < n]
    se, ppv = beats.match_peaks(found, reference, tolerance=int(0.15 * s.fs_hz))  # EC57: 150 ms
    assert se >= 0.99 and ppv >= 0.99, (se, ppv)
    rr = beats.rr_features(reference, s.fs_hz)
    assert 0.3 < float(np.median(rr[:, 0])) < 1.5  # plausible heart rates, 40-200 bpm
