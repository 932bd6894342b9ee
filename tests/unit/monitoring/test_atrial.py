"""P-wave correlation per beat on real MIT-BIH stretches: high in sinus rhythm with ectopy,
low in AF (what RR intervals cannot tell apart); chunked equals offline."""

from __future__ import annotations

import numpy as np
import pytest

from medseq.monitoring.atrial import AtrialActivity
from medseq.monitoring.qrs import StreamingQRSDetector


def _p_corr(mitdb, name: str, start_s: float, stop_s: float, chunk: int | None = None):
    rec = mitdb(name)
    x = rec.samples[round(start_s * rec.fs_hz) : round(stop_s * rec.fs_hz)]
    qrs, atrial = StreamingQRSDetector(rec.fs_hz), AtrialActivity(rec.fs_hz)
    step = chunk or len(x)
    parts = [
        atrial.push(x[i : i + step], i, qrs.push(x[i : i + step])) for i in range(0, len(x), step)
    ]
    return np.concatenate(parts)


def test_p_waves_are_found_in_sinus_rhythm_with_ectopy_and_not_in_af(mitdb):
    sinus = _p_corr(mitdb, "100", 0, 180)  # sinus rhythm
    ectopy = _p_corr(mitdb, "223", 0, 180)  # sinus with frequent PVCs (false AF by RR alone)
    af = _p_corr(mitdb, "201", 0, 180)  # 201 opens with about 6 minutes of AF
    assert np.isnan(sinus[:4]).all() and np.isfinite(sinus[5:]).all()  # template first
    assert np.nanmedian(sinus) > 0.8 and np.nanmedian(ectopy) > 0.8
    assert np.nanmedian(af) < 0.5
    assert np.nanmean(af > 0.5) < 0.5 < np.nanmean(ectopy > 0.5)


def test_chunked_equals_offline(mitdb):
    offline = _p_corr(mitdb, "201", 0, 60)
    for chunk in (100, 360, 1000):
        np.testing.assert_allclose(_p_corr(mitdb, "201", 0, 60, chunk), offline, equal_nan=True)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="segment_s"):
        AtrialActivity(360.0, segment_s=(0.08, 0.30))
    with pytest.raises(ValueError, match="template_beats"):
        AtrialActivity(360.0, template_beats=1)
