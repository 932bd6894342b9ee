"""The AF rule selection of benchmarks/results/monitor.md section 7: SVDB has no AF to select
on, the CinC pseudo-Holter streams keep every recording and mark the AF blocks, and a rule
is run and scored as the detector and ``bench_monitor.py af`` do (real records)."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

from medseq.monitoring.af_model import FEATURES, AFModel
from medseq.monitoring.episodes import EpisodeRule
from medseq.monitoring.qrs import StreamingQRSDetector
from medseq.paths import dataset_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from select_af_rule import pseudo_holter, run_rule, score, svdb_rhythms
from train_af_rr import _rr_series


def test_svdb_has_no_af_episode_to_select_on():
    rhythms = svdb_rhythms(dataset_dir("svdb"))
    assert len(rhythms) == 58  # the staged records
    assert {k: v for k, v in rhythms.items() if v} == {"852": ["(N"]}


@pytest.fixture(scope="module")
def cinc():
    """RR intervals (s) and labels of the first 120 CinC 2017 recordings, detected."""
    _, labels, rrs, _ = _rr_series(120, None)
    return rrs, labels


def test_pseudo_holter_uses_every_recording_once_and_marks_the_af_blocks(cinc):
    rrs, labels = cinc
    assert labels.count("A") >= 5
    rr, episodes, order = pseudo_holter(rrs, labels, random_state=0)
    assert sorted(order) == list(range(len(rrs)))
    np.testing.assert_array_equal(rr, np.concatenate([rrs[i] for i in order]))
    assert len(rr) == sum(len(r) for r in rrs)
    np.testing.assert_allclose(np.sort(rr), np.sort(np.concatenate(rrs)))
    af_time = sum(float(r.sum()) for r, lab in zip(rrs, labels, strict=True) if lab == "A")
    assert sum(hi - lo for lo, hi in episodes) == pytest.approx(af_time)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(episodes))  # ordered, disjoint
    assert pseudo_holter(rrs, labels, 0)[1] == episodes  # the layout is the seed's
    assert pseudo_holter(rrs, labels, 1)[1] != episodes


def test_a_longer_minimum_duration_raises_fewer_alerts_on_real_af(cinc):
    # MIT-BIH 201 opens with about 6 minutes of AF: P(AF) of a hand-set irregularity model
    from medseq.monitoring.records import read_record

    rec = read_record(dataset_dir("mitdb_full") / "201", lead="MLII")
    peaks = StreamingQRSDetector(rec.fs_hz).push(rec.samples[: round(360 * rec.fs_hz)])
    rr = np.diff(peaks) / rec.fs_hz
    names = list(FEATURES)
    coef = np.zeros(len(names))
    coef[names.index("share_0.1")] = 4.0
    model = AFModel({"format": "medseq.af_rr/2", "features": names, "n_intervals": 24,
                     "mean": [0.0] * len(names), "scale": [1.0] * len(names),
                     "coef": coef.tolist(), "intercept": -2.0, "threshold_on": 0.6,
                     "threshold_off": 0.3})  # fmt: skip
    p, t = model.predict_proba(model.features(rr)), np.cumsum(rr)[23:]
    short = run_rule(p, t, 0.6, 0.3, EpisodeRule("AF", 1, 1, min_on_s=10, min_off_s=10))
    long = run_rule(p, t, 0.6, 0.3, EpisodeRule("AF", 1, 1, min_on_s=30, min_off_s=10))
    assert 1 <= len(long) <= len(short)
    assert min(a[2] - a[0] for a in long) >= 30  # reported once the evidence held 30 s
    s = score(long, [(0.0, 300.0)])
    assert (s["hits"], s["episodes"]) == (1, 1) and s["true_alerts"] == s["alerts"]
    assert score(long, [(400.0, 500.0)])["hits"] == 0
