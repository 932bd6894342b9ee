"""Signal and beat featurizers: options checked, state round trip, context windows, crops."""

import json

import numpy as np
import pytest
import torch

from medseq.datasets.ecg_augment import RandomCropAugment
from medseq.features.registry import featurizer_from_state_dict
from medseq.features.signals.beat_featurizer import BeatFeaturizer
from medseq.features.signals.beat_sequence import beat_context
from medseq.features.signals.signal_featurizer import SignalFeaturizer
from medseq.schema import Signal


def _ecg(record_id: str, seconds: float, fs: float = 300.0, rate_hz: float = 1.2) -> Signal:
    """A spiky periodic trace (QRS-like peaks on a slow baseline wander) with beat marks."""
    t = np.arange(round(seconds * fs)) / fs
    phase = (t * rate_hz) % 1.0
    x = np.exp(-(((phase - 0.5) / 0.02) ** 2)) + 0.3 * np.sin(2 * np.pi * 0.2 * t)
    beats = np.round((np.arange(int(seconds * rate_hz)) + 0.5) / rate_hz * fs).astype(np.int64)
    beats = beats[beats < len(t)]
    return Signal(
        record_id,
        x[:, None].astype(np.float32),
        fs,
        ("ECG",),
        ("mV",),
        annotation_samples=beats,
        annotation_symbols=tuple("N" if i % 5 else "V" for i in range(len(beats))),
    )


def test_signal_featurizer_pads_resamples_and_round_trips():
    signals = [_ecg("a", 10.0), _ecg("b", 12.0)]
    featurizer = SignalFeaturizer(target_fs_hz=150.0, max_seconds=11.0).fit(signals)
    out = featurizer.transform(signals)
    assert out["values"].shape == (2, 1650, 1) and out["lengths"].tolist() == [1500, 1650]
    assert np.all(out["values"][0, 1500:] == 0.0)
    state = json.loads(json.dumps(featurizer.state_dict()))
    assert state["kind"] == "signal"
    again = featurizer_from_state_dict(state)
    assert isinstance(again, SignalFeaturizer) and again == featurizer
    np.testing.assert_array_equal(again.transform(signals)["values"], out["values"])


def test_signal_featurizer_rejects_bad_options_and_unfitted_use():
    with pytest.raises(ValueError, match="normalize must be one of"):
        SignalFeaturizer(normalize="minmax")
    with pytest.raises(ValueError, match="high_hz < target_fs_hz / 2"):
        SignalFeaturizer(target_fs_hz=60.0, high_hz=40.0)
    with pytest.raises(RuntimeError, match="before fit"):
        SignalFeaturizer().transform([_ecg("a", 5.0)])
    with pytest.raises(ValueError, match="unknown keys"):
        SignalFeaturizer.from_state_dict({"kind": "signal", "fs": 100})


def test_beat_featurizer_state_round_trip_gives_identical_features():
    signals = [_ecg("a", 30.0), _ecg("b", 20.0, rate_hz=1.6)]
    featurizer = BeatFeaturizer(segment_fs_hz=40.0, context_beats=3)
    featurizer.fit([featurizer.raw_features(s)[0] for s in signals])
    matrix, positions = featurizer.features(signals[0])
    assert matrix.shape == (len(positions), featurizer.n_features) == (36, 2 * 28 + 11)
    # z-scored on the training beats: every column has mean ~0 over them (up to the clip)
    both = np.concatenate([featurizer.features(s)[0] for s in signals])
    assert np.abs(both.mean(axis=0)).max() < 1e-2
    state = json.loads(json.dumps(featurizer.state_dict()))
    again = featurizer_from_state_dict(state)
    assert isinstance(again, BeatFeaturizer) and again.context_beats == 3
    np.testing.assert_array_equal(again.features(signals[0])[0], matrix)
    with pytest.raises(ValueError, match="morphology must be one of"):
        BeatFeaturizer(morphology="wide")
    assert BeatFeaturizer(morphology="none").n_features == 11


def test_beat_context_reads_each_beat_last_after_its_predecessors():
    matrix = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    values, lengths = beat_context(matrix, np.array([0, 2, 9]), context_beats=3)
    assert values.shape == (3, 4, 2) and lengths.tolist() == [1, 3, 4]
    assert values[0, :, 0].tolist() == [0, 0, 0, 0]
    assert values[1, :, 0].tolist() == [0, 1, 2, 0]
    assert values[2, :, 0].tolist() == [6, 7, 8, 9]
    # the beat itself sits at step lengths - 1
    assert [values[i, n - 1, 0] for i, n in enumerate(lengths)] == [0, 2, 9]


def test_random_crop_stays_inside_each_record():
    values = torch.arange(20, dtype=torch.float32).repeat(3, 1)[:, :, None]
    lengths = torch.tensor([20, 12, 5])
    out = RandomCropAugment(8)(
        {"values": values, "lengths": lengths, "y": torch.zeros(3)},
        torch.Generator().manual_seed(1),
    )
    assert out["values"].shape == (3, 8, 1) and out["lengths"].tolist() == [8, 8, 5]
    for i, n in enumerate(out["lengths"].tolist()):
        steps = out["values"][i, :n, 0]
        assert torch.all(steps[1:] - steps[:-1] == 1)  # contiguous
        assert steps.max() < lengths[i]  # never past the record's end
    assert torch.all(out["values"][2, 5:] == 0)  # a short record keeps its padding
    with pytest.raises(ValueError, match="crop length"):
        RandomCropAugment(0)
