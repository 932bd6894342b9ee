"""The monitor page's recent-samples buffer, and detector checkpoints holding complex
filter state (the numpy DSP's poles), which safetensors cannot store as such."""

from __future__ import annotations

import numpy as np
from safetensors.numpy import load, save

from medseq.serving.monitor_page import RecentSamples
from medseq.serving.signal_state import _Decoder, _Encoder


def test_window_keeps_only_the_last_seconds_and_marks_gaps():
    recent = RecentSamples(seconds=2.0, max_streams=2)
    fs = 4.0
    recent.add("a", 0, np.arange(4.0), fs)
    recent.add("a", 4, np.arange(4.0, 8.0), fs)
    recent.add("a", 10, np.array([10.0, 11.0]), fs)  # a 2-sample gap
    start, x = recent.window("a")
    assert start == 4  # 8 samples (2 s) before the end at 12
    assert x == [4.0, 5.0, 6.0, 7.0, None, None, 10.0, 11.0]
    assert recent.window("a", seconds=1.0) == (8, [None, None, 10.0, 11.0])
    assert recent.window("a", after=10) == (10, [10.0, 11.0])
    assert recent.window("a", after=12) == (12, [])


def test_buffer_is_bounded_in_streams_and_forgets_closed_ones():
    recent = RecentSamples(seconds=1.0, max_streams=2)
    for sid in ("a", "b", "c"):
        recent.add(sid, 0, np.ones(1000), 360.0)
    assert recent.window("a") == (0, [])  # the least recently written went first
    assert len(recent.window("c")[1]) == 360
    recent.retain({"b"})
    assert recent.window("c") == (0, [])
    assert len(recent.window("b")[1]) == 360


def test_checkpoint_codec_round_trips_complex_arrays_bit_exact():
    arrays = [
        np.array([1 + 2j, 3 - 1e-300j, complex(np.nan, 1)]),
        (np.arange(6) * (1 + 1j)).reshape(2, 3),
        np.array([0.5 - 0.25j], np.complex64),
        np.zeros((3, 0), complex),
    ]
    for a in arrays:
        enc = _Encoder()
        ref = enc.value(a)
        back = _Decoder(load(save(enc.arrays))).value(ref)
        assert back.dtype == a.dtype and back.shape == a.shape
        assert np.array_equal(back, a, equal_nan=True)
