"""Signal quality on a real record with injected artefacts: each is named, clean is good."""

from __future__ import annotations

import numpy as np
import pytest

from medseq.monitoring.quality import SignalQuality


def _changes(x: np.ndarray, fs: float, chunk: int = 360):
    q = SignalQuality(fs)
    q.restart(0, gap=False)
    out = []
    for i in range(0, len(x), chunk):
        out += q.push(x[i : i + chunk])
    return out


def test_clean_record_stays_good(mitdb):
    rec = mitdb("100")
    assert _changes(rec.samples[: 360 * 300], rec.fs_hz) == []


@pytest.mark.parametrize(
    ("reason", "inject"),
    [
        ("nan", lambda seg: np.full_like(seg, np.nan)),
        ("flat_line", lambda seg: np.full_like(seg, seg[0])),
        ("lead_off", lambda seg: seg + 6.0),
        ("saturation", lambda seg: np.clip(seg, None, np.percentile(seg, 80))),
    ],
)
def test_each_artefact_is_reported_with_its_reason_then_recovers(mitdb, reason, inject):
    rec = mitdb("103")
    x = rec.samples[: 360 * 60].copy()
    lo, hi = 360 * 20, 360 * 30
    x[lo:hi] = inject(x[lo:hi])
    changes = _changes(x, rec.fs_hz, chunk=257)
    bad = [c for c in changes if c.state == "bad"]
    assert bad and bad[0].reason == reason
    assert lo - 360 <= bad[0].sample <= lo + 360
    assert changes[-1].state == "good" and changes[-1].sample >= hi + 2 * 360


def test_gap_is_reported_at_the_restart(mitdb):
    rec = mitdb("100")
    q = SignalQuality(rec.fs_hz)
    q.restart(0, gap=False)
    assert q.push(rec.samples[: 360 * 5]) == []
    q.restart(360 * 600, gap=True)
    changes = q.push(rec.samples[360 * 600 : 360 * 610])
    assert changes[0].reason == "gap" and changes[0].sample == 360 * 600
    assert changes[-1].state == "good"
