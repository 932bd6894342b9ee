"""``medseq train CONFIG`` under ``torchrun --nproc_per_node 2`` on CPU, on real data.

Both ranks train their half of every batch (DDP over gloo); the metrics must be those of a
single-process run of the same config, and rank 0 alone prints and writes the outputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest

from medseq.experiment import load_config, run_experiment

CONFIG = """
name = "ddp-smoke"
seeds = [0]

[data]
train = "physionet2012/set-a.tar.gz"
test = "physionet2012/set-b.tar.gz"
task = "mortality"
max_subjects = 300

[features]
static_summary = true
delta_scale = "horizon"

[model]
cell = "gru"
hidden_size = 8
pooling = "mean"
input_delta = true

[train]
epochs = 2
monitor = "auroc"
progress = false

[evaluate]
n_boot = 50
"""


@pytest.mark.slow
def test_train_under_torchrun_equals_one_process(tmp_path, physionet2012_dir):
    path = tmp_path / "ddp.toml"
    path.write_text(CONFIG)
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "medseq.cli", "train", str(path), "-o", str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("test metrics") == 1  # rank 0 alone prints
    assert sorted(p.name for p in out.iterdir()) == [
        "bundle",
        "results.json",
        "seed0",
        "test_predictions.csv",
        "val_predictions.csv",  # out-of-fold, for choosing drift and conformal settings
    ]

    single = run_experiment(replace(load_config(path), output_dir=str(tmp_path / "one")))
    ddp = json.loads((out / "results.json").read_text())
    assert ddp["threshold"] == pytest.approx(single.threshold, abs=1e-6)
    for name, (point, _, _) in single.test_metrics.items():
        assert ddp["test_metrics"][name][0] == pytest.approx(point, abs=1e-6), name
