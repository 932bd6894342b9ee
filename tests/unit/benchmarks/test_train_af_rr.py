"""The command behind the AF model of benchmarks/results/monitor.md runs and writes a model
the detector loads (on the first 150 CinC 2017 recordings, real data)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from medseq.monitoring.af_model import FEATURES, FORMAT, AFModel
from medseq.monitoring.detector import MonitorSettings
from medseq.monitoring.episodes import EpisodeTracker
from medseq.monitoring.qrs import StreamingQRSDetector
from medseq.monitoring.records import read_record
from medseq.paths import dataset_dir

ROOT = Path(__file__).resolve().parents[3]


def test_train_af_rr_writes_a_loadable_cinc_only_model(tmp_path):
    out = tmp_path / "af.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/train_af_rr.py"), "-o", str(out),
         "--max-records", "150"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    state = json.loads(out.read_text())
    assert state["format"] == FORMAT and state["n_intervals"] == 24
    assert state["features"] == list(FEATURES)
    assert 0 < state["threshold_off"] < state["threshold_on"] < 1
    info = state["provenance"]
    assert info["train_af_windows"] > 0 and info["heldout_af_windows"] > 0
    assert info["heldout_auc"] > 0.8  # AF vs the rest on held-out CinC 2017 recordings
    assert info["heldout_alerts"] > 0 and 0 < info["heldout_alert_sensitivity"] <= 1
    model = AFModel.load(out)
    regular = model.update(0.8)
    for _ in range(30):
        regular = model.update(0.8)
    model.reset()
    rng = np.random.default_rng(0)
    for v in rng.uniform(0.4, 1.1, size=30):
        irregular = model.update(float(v))
    assert regular is not None and irregular is not None and irregular > regular


def _af_alerts(model: AFModel, record: str, start_s: float, stop_s: float) -> list[float]:
    """Onset times of AF episodes when the model streams over a stretch of one MIT-BIH
    record, beat by beat, with the detector's AF rule (hysteresis and 10 s to open)."""
    rec = read_record(dataset_dir("mitdb_full") / record, lead="MLII")
    x = rec.samples[round(start_s * rec.fs_hz) : round(stop_s * rec.fs_hz)]
    peaks = StreamingQRSDetector(rec.fs_hz).push(x) / rec.fs_hz
    model.reset()
    tracker = EpisodeTracker(MonitorSettings().af_rule)
    onsets = []
    for t, rr in zip(peaks[1:], np.diff(peaks), strict=True):
        p = model.update(float(rr))
        if p is None:
            continue
        alert = tracker.update(
            t, p >= (model.threshold_off if tracker.open else model.threshold_on)
        )
        if alert is not None and alert.kind == "onset":
            onsets.append(alert.start_s)
    return onsets


def test_the_cinc_model_alerts_on_mitbih_af_and_not_on_bigeminy(tmp_path):
    """A model fitted on 150 CinC 2017 recordings, streamed over MIT-BIH (external):
    119's first 3 minutes (sinus with ventricular bigeminy runs) raise no AF; 201's first
    6 minutes (AF) and 203's AF from 1:50 to 4:20 (AF with PVCs) do."""
    out = tmp_path / "af.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/train_af_rr.py"), "-o", str(out),
         "--max-records", "150"],
        capture_output=True, text=True, env=env, timeout=600, check=True,
    )  # fmt: skip
    model = AFModel.load(out)
    assert _af_alerts(model, "119", 0, 180) == []
    assert _af_alerts(model, "100", 0, 300) == []
    assert len(_af_alerts(model, "201", 0, 360)) >= 1
    assert len(_af_alerts(model, "203", 110, 260)) >= 1
