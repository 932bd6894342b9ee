"""The GPU training benchmark, run on the CPU with toy sizes (``--tiny``): every path works."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

import bench_training_gpu as bench
from benchkit.flops import recurrent_flops


def test_flops_per_sample_counts_the_recurrence_of_each_model():
    shapes = bench.Shapes()
    assert bench.flops_per_sample("nn.LSTM", shapes, 256) == recurrent_flops(
        "lstm", 1, 48, 111, 256
    )
    assert bench.flops_per_sample("medseq gru", shapes, 64) == 3 * 2 * 48 * (111 + 64) * 3 * 64
    assert bench.flops_per_sample("medseq grud", shapes, 128) == recurrent_flops(
        "grud", 1, 48, 74, 128
    )


def test_tiny_run_times_every_cell_and_checks_bf16(tmp_path):
    out = bench.main(["--tiny", "--device", "cpu", "--out", str(tmp_path / "gpu.md")])
    data = json.loads(out.with_suffix(".json").read_text())
    shapes = bench.Shapes.tiny()
    fp32 = {(r["model"], r["hidden"]) for r in data["rows"] if r["precision"] == "fp32"}
    assert fp32 == {(m, h) for m in bench.MODELS for h in shapes.hidden}
    assert all(r["samples_per_s"] > 0 and r["fraction"] > 0 for r in data["rows"])
    assert set(data["rates"]) == {"bf16", "fp32", "tf32"} and min(data["rates"].values()) > 0
    checks = {(c["model"], c["hidden"]): c for c in data["checks"]}
    # the GRUs (cuDNN/oneDNN and GRU-D's own loop) train in bf16 close to float32 on the CPU
    for model in ("nn.GRU", "medseq gru", "medseq grud"):
        for h in shapes.hidden:
            assert checks[(model, h)]["correct"], checks[(model, h)]
            assert checks[(model, h)]["loss_rel"] < 0.02
    text = out.read_text()
    assert "## bf16 autocast against fp32" in text and "| medseq grud | 8 | 4 |" in text


def test_refuses_cuda_without_a_gpu(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="torch sees no CUDA device"):
        bench.main(["--tiny", "--device", "cuda", "--out", str(tmp_path / "x.md")])
