"""Episode hysteresis and minimum duration, and RR irregularity on real rhythms."""

from __future__ import annotations

import numpy as np
import pytest

from medseq.features.signals.beats import beat_annotations
from medseq.monitoring.episodes import EpisodeRule, EpisodeTracker, RRIrregularity
from medseq.paths import dataset_dir
from medseq.sources.wfdb_records import read_record as wfdb_read


def _run(tracker: EpisodeTracker, evidence: list[bool], rr_s: float = 0.8):
    return [
        (i, a.kind)
        for i, e in enumerate(evidence)
        if (a := tracker.update(i * rr_s, e)) is not None
    ]


def test_two_ectopic_beats_are_no_run_three_are_and_one_normal_beat_does_not_end_it():
    tracker = EpisodeTracker(EpisodeRule("V run", min_on_beats=3, min_off_beats=2))
    V, N = True, False
    alerts = _run(tracker, [N, V, V, N, V, V, V, N, V, N, N, N])
    assert alerts == [(6, "onset"), (10, "offset")]


def test_minimum_duration_in_seconds_delays_the_onset_and_dates_it_at_the_start():
    tracker = EpisodeTracker(EpisodeRule("AF", 1, 1, min_on_s=10.0, min_off_s=5.0))
    evidence = [False] * 5 + [True] * 20 + [False] * 10
    onset = [tracker.update(i * 1.0, e) for i, e in enumerate(evidence)]
    alerts = [a for a in onset if a is not None]
    assert [a.kind for a in alerts] == ["onset", "offset"]
    assert alerts[0].start_s == 5.0 and alerts[0].reported_s == 15.0
    assert alerts[1].start_s == 25.0 and alerts[1].reported_s == 30.0


def test_suppress_closes_an_open_episode_and_says_why():
    tracker = EpisodeTracker(EpisodeRule("V run"))
    _run(tracker, [True] * 4)
    alert = tracker.suppress(10.0, "flat_line")
    assert alert is not None and alert.kind == "suppressed" and alert.reason == "flat_line"
    assert not tracker.open and tracker.suppress(11.0, "flat_line") is None


@pytest.mark.parametrize("field", ["min_on_beats", "min_off_beats"])
def test_rule_refuses_zero_beats(field):
    with pytest.raises(ValueError, match=field):
        EpisodeRule("x", **{field: 0})


def _shares(record: str, start_s: float, stop_s: float) -> np.ndarray:
    signal = wfdb_read(dataset_dir("mitdb_full"), record)
    peaks, _ = beat_annotations(signal)
    peaks = peaks[(peaks >= start_s * 360) & (peaks < stop_s * 360)]
    irregularity = RRIrregularity(24)
    shares = [irregularity.update(rr) for rr in np.diff(peaks) / 360.0]
    return np.array([s for s in shares if s is not None])


def test_rr_irregularity_is_high_in_atrial_fibrillation_and_low_in_sinus_rhythm():
    # reference rhythm annotations: record 202 is in atrial fibrillation from 21:42 to
    # 25:27 (and sinus rhythm before 19:02); record 100 is in sinus rhythm throughout
    sinus = _shares("100", 0, 600)
    af = _shares("202", 22 * 60, 25 * 60)
    sinus_202 = _shares("202", 0, 18 * 60)
    assert np.median(sinus) < 0.2 and np.median(sinus_202) < 0.2
    assert np.median(af) > 0.6
