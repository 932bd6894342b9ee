"""The AF RR model: features of real RR intervals, streaming equals windows, bad files refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medseq.monitoring.af_model import FEATURES, FORMAT, AFModel, rr_features, rr_windows
from medseq.monitoring.qrs import StreamingQRSDetector


def _state(n_intervals: int = 24) -> dict:
    """A hand-set model: AF when successive differences are large but lag-2 ones are too
    (not a fitted model; the fitted one is evaluated by bench_monitor.py af)."""
    coef = np.zeros(len(FEATURES))
    coef[FEATURES.index("share_0.1")] = 2.0
    coef[FEATURES.index("min_lag")] = 2.0
    return {
        "format": FORMAT,
        "features": list(FEATURES),
        "n_intervals": n_intervals,
        "mean": [0.0] * len(FEATURES),
        "scale": [1.0] * len(FEATURES),
        "coef": coef.tolist(),
        "intercept": -1.0,
        "threshold_on": 0.6,
        "threshold_off": 0.3,
    }


def _rr(mitdb, name: str, minutes: float) -> np.ndarray:
    rec = mitdb(name)
    x = rec.samples[: round(minutes * 60 * rec.fs_hz)]
    return np.diff(StreamingQRSDetector(rec.fs_hz).push(x)) / rec.fs_hz


def test_lag_features_separate_bigeminy_from_af(mitdb):
    # record 119: ventricular bigeminy in its first minutes; 202 from 21:42 is AF
    bigeminy = rr_windows(_rr(mitdb, "119", 3), 24, step=24)
    sinus = rr_windows(_rr(mitdb, "100", 3), 24, step=24)
    assert len(bigeminy) >= 5 and len(sinus) >= 5
    i_share, i_min = FEATURES.index("share_0.1"), FEATURES.index("min_lag")
    # irregular like AF by successive differences, but regular two beats apart
    assert np.median(bigeminy[:, i_share]) > 0.5
    assert np.median(bigeminy[:, i_min]) < np.median(bigeminy[:, i_share])
    assert np.median(sinus[:, i_share]) < 0.2
    assert bigeminy.shape[1] == len(FEATURES)


def test_streaming_update_equals_the_window_features(mitdb):
    rr = _rr(mitdb, "201", 4)
    model = AFModel(_state())
    streamed = [model.update(float(v)) for v in rr]
    assert streamed[:23] == [None] * 23
    windows = model.predict_proba(rr_windows(rr, 24))
    np.testing.assert_allclose(np.array(streamed[23:], float), windows, atol=1e-12)
    model.reset()
    assert model.update(0.8) is None


def test_a_file_that_is_not_an_af_model_is_refused(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({**_state(), "format": "other"}))
    with pytest.raises(ValueError, match="not an AF RR model"):
        AFModel.load(path)
    path.write_text("{")
    with pytest.raises(ValueError, match="cannot read the AF model"):
        AFModel.load(path)
    assert rr_features(np.array([0.8, 0.8, 0.8, 0.8, 0.8]))[0] == 0.0
