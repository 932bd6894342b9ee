"""Signal: the waveform type rejects malformed input with a message naming the field."""

import numpy as np
import pytest

from medseq.schema import DataError, Signal


def _signal(**overrides):
    kwargs = {
        "record_id": "r1",
        "samples": np.zeros((100, 2)),
        "fs_hz": 250,
        "channel_names": ("I", "II"),
        "units": ("mV", "mV"),
        "annotation_samples": np.array([10, 20]),
        "annotation_symbols": ("N", "V"),
    }
    return Signal(**{**kwargs, **overrides})


def test_valid_signal_normalises_types():
    s = _signal()
    assert s.samples.dtype == np.float32
    assert s.fs_hz == 250.0 and isinstance(s.fs_hz, float)
    assert s.annotation_samples.dtype == np.int64
    assert (s.n_samples, s.n_channels, s.duration_s) == (100, 2, 0.4)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"samples": np.zeros(100)}, "samples must be a non-empty"),
        ({"samples": np.zeros((0, 2))}, "samples must be a non-empty"),
        ({"samples": np.full((5, 2), np.nan)}, "NaN or inf"),
        ({"fs_hz": 0}, "fs_hz must be"),
        ({"fs_hz": float("nan")}, "fs_hz must be"),
        ({"channel_names": ("I",)}, "channel_names must have one entry per channel"),
        ({"units": ("mV", "mV", "mV")}, "units must have one entry per channel"),
        ({"annotation_symbols": ("N",)}, "equal length"),
        ({"annotation_samples": np.array([10, 100])}, "outside"),
        ({"annotation_samples": np.array([-1, 5])}, "outside"),
        ({"annotation_samples": np.array([20, 10])}, "out of order"),
        ({"annotation_samples": np.array([1.5, 2.0])}, "must be integers"),
    ],
)
def test_bad_signal_is_rejected_naming_the_field(overrides, message):
    with pytest.raises(DataError, match=message) as info:
        _signal(**overrides)
    assert "'r1'" in str(info.value)
