"""The command behind the AF model of benchmarks/results/monitor.md runs and writes a model
the detector loads (on the first 150 CinC 2017 recordings, real data)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from medseq.monitoring.af_model import FEATURES, AFModel

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
    assert state["features"] == list(FEATURES) and state["n_intervals"] == 24
    assert 0 < state["threshold_off"] < state["threshold_on"] < 1
    info = state["provenance"]
    assert info["train_af_windows"] > 0 and info["heldout_af_windows"] > 0
    assert info["heldout_auc"] > 0.8  # AF vs the rest on held-out CinC 2017 recordings
    model = AFModel.load(out)
    regular = model.update(0.8)
    for _ in range(30):
        regular = model.update(0.8)
    model.reset()
    rng = np.random.default_rng(0)
    for v in rng.uniform(0.4, 1.1, size=30):
        irregular = model.update(float(v))
    assert regular is not None and irregular is not None and irregular > regular
