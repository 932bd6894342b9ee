"""The benchmark helpers: FLOP counts, linear fits, machine facts and the tensor file."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

from benchkit.fits import linear_fit
from benchkit.flops import gate_count, matmul_flops, recurrent_flops
from benchkit.machine import cpu_model, facts_markdown, machine_facts, package_version
from benchkit.tensors import TensorFileError, export_physionet2012, load_tensors


def test_recurrent_flops_counts_gate_matmuls():
    # LSTM, B=64, T=48, I=111, H=256: forward 2*B*T*(I+H)*4H, backward twice that
    forward = 2 * 64 * 48 * (111 + 256) * 4 * 256
    assert recurrent_flops("lstm", 64, 48, 111, 256, backward=False) == forward
    assert recurrent_flops("lstm", 64, 48, 111, 256) == 3 * forward
    assert recurrent_flops("gru", 2, 3, 4, 5, backward=False) == 2 * 2 * 3 * 9 * 15
    assert recurrent_flops("rnn", 1, 1, 1, 1, backward=False) == 2 * 2 * 1
    assert [gate_count(c) for c in ("rnn", "gru", "lstm", "grud")] == [1, 3, 4, 3]
    assert matmul_flops(2, 3, 4) == 48


def test_recurrent_flops_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown cell 'transformer'"):
        recurrent_flops("transformer", 1, 1, 1, 1)
    with pytest.raises(ValueError, match="hidden must be a positive int, got 0"):
        recurrent_flops("gru", 1, 1, 1, 0)


def test_linear_fit_recovers_a_line_and_flags_a_curve():
    x = np.array([48, 1000, 5000, 10000, 20000], dtype=float)
    fit = linear_fit(x, 3e-5 * x + 0.2)
    assert fit.slope == pytest.approx(3e-5) and fit.intercept == pytest.approx(0.2)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.predict(100.0) == pytest.approx(0.203)
    assert linear_fit(x, x**3).r2 < 0.98  # cubic growth is not linear
    assert linear_fit(x, np.full(5, 7.0)).r2 == 1.0  # flat memory is a perfect (flat) line


def test_linear_fit_needs_three_points_with_spread():
    with pytest.raises(ValueError, match="at least 3 points"):
        linear_fit([1, 2], [1, 2])
    with pytest.raises(ValueError, match="single value"):
        linear_fit([1, 1, 1], [1, 2, 3])
    with pytest.raises(ValueError, match="equal length"):
        linear_fit([1, 2, 3], [1, 2])


def test_machine_facts(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\n")
    assert cpu_model(cpuinfo) == "Test CPU 9000"
    facts = machine_facts(["numpy", "surely-not-a-package-xyz"])
    assert facts["numpy"] == np.__version__
    assert facts["surely-not-a-package-xyz"] == "not installed"
    assert package_version("surely-not-a-package-xyz") == "not installed"
    usable, total = facts["CPU threads (usable / total)"].split(" / ")
    assert 1 <= int(usable) <= int(total)
    for key in ("CPU", "OS", "Python", "load average (1, 5, 15 min) at write time"):
        assert facts[key]
    lines = facts_markdown({"CPU": "x"})
    assert lines == ["## Machine", "", "- CPU: x"]


def test_export_then_load_real_tensors(set_a, tmp_path):
    path = export_physionet2012(tmp_path / "t.npz", data=set_a, max_subjects=120)
    arrays = load_tensors(path)
    assert arrays["values"].shape == (120, 48, 37)
    assert set(np.unique(arrays["mask"])) <= {0.0, 1.0}
    assert arrays["mask"].sum() > 0
    assert set(np.unique(arrays["y"])) <= {0.0, 1.0}
    assert (arrays["lengths"] >= 1).all() and (arrays["lengths"] <= 48).all()


def _write(path: Path, **overrides) -> Path:
    arrays = {
        "values": np.zeros((4, 5, 3), np.float32),
        "mask": np.ones((4, 5, 3), np.float32),
        "delta": np.zeros((4, 5, 3), np.float32),
        "lengths": np.full(4, 5, np.int64),
        "y": np.array([0, 1, 0, 1], np.float32),
    }
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"delta": None}, r"missing field\(s\) \['delta'\]"),
        ({"mask": np.ones((4, 5, 3), np.float64)}, "field 'mask' must be float32"),
        ({"lengths": np.array([5, 6, 5, 5])}, r"field 'lengths' must lie in \[1, 5\], row 1 is 6"),
        ({"y": np.array([0, 2, 0, 1], np.float32)}, "field 'y' must be 0/1"),
        ({"values": np.full((4, 5, 3), np.nan, np.float32)}, "'values' holds NaN"),
    ],
)
def test_load_tensors_names_the_file_and_field(tmp_path, overrides, message):
    path = _write(tmp_path / "bad.npz", **overrides)
    with pytest.raises(TensorFileError, match=message) as info:
        load_tensors(path)
    assert "bad.npz" in str(info.value)


def test_load_tensors_missing_file(tmp_path):
    with pytest.raises(TensorFileError, match="no such tensor file"):
        load_tensors(tmp_path / "none.npz")


def test_target_feasibility_floor_and_ceiling():
    import target_feasibility as tf

    # GRU, H = 64, I = 111: forward 2*48*175*192 = 3.2256 MFLOP; weight grads the same;
    # the gradient through W_hh 2*48*64*192 = 1.1796 MFLOP.
    assert tf.floor_flops_per_sample("gru", 64) == 2 * 3_225_600 + 1_179_648
    throughput = [
        {"lib": lib, "model": model, "hidden": h, "threads": 1, "samples_per_s": sps}
        for lib, model, sps in (("keras", "lstm", 100.0), ("keras", "gru", 100.0),
                                ("pypots", "grud", 10.0), ("medseq", "lstm", 90.0),
                                ("medseq", "gru", 80.0), ("medseq-fused", "gru", 120.0),
                                ("medseq", "grud", 20.0), ("medseq-fused", "grud", 15.0))
        for h in (64, 128, 256)
    ]  # fmt: skip
    limit = [{"case": "mm 2048", "hidden": 0, "gflops": 15.0}]
    ceiling, source, rows = tf.feasibility(throughput, limit)
    assert ceiling == 15.0 and source == "mm 2048" and len(rows) == 9
    gru64 = next(r for r in rows if r["cell"] == "gru" and r["hidden"] == 64)
    floor = tf.floor_flops_per_sample("gru", 64)
    assert gru64["required_gflops"] == pytest.approx(1.2 * 100 * floor / 1e9)
    assert gru64["reachable"]  # 0.9 GFLOP/s needed, 15 available
    # medseq's faster variant counts: the fused GRU, but the default GRU-D.
    assert (gru64["medseq_variant"], gru64["medseq_samples_per_s"]) == ("medseq-fused", 120.0)
    assert gru64["medseq_share"] == pytest.approx(120 * floor / 1e9 / 15.0)
    grud64 = next(r for r in rows if r["cell"] == "grud" and r["hidden"] == 64)
    assert grud64["medseq_variant"] == "medseq"
    # LSTM 256: the peer runs at 9.7 GFLOP/s on the floor count; 1.0x of it is below 15.
    lstm256 = next(r for r in rows if r["cell"] == "lstm" and r["hidden"] == 256)
    assert lstm256["reachable"]
    # A Keras GRU at 1500 samples/s (110 GFLOP/s at 256) sets the ceiling; 1.2x it is above.
    heavy = [dict(r, samples_per_s=1500.0) if r["lib"] == "keras" and r["model"] == "gru" else r
             for r in throughput]  # fmt: skip
    _, _, heavy_rows = tf.feasibility(heavy, [{"case": "mm", "hidden": 0, "gflops": 100.0}])
    assert not next(r for r in heavy_rows if r["cell"] == "gru" and r["hidden"] == 256)["reachable"]
    # A peer faster than every measured kernel raises the ceiling to its own rate.
    fast = [dict(r, samples_per_s=r["samples_per_s"] * 100) for r in throughput]
    ceiling, source, _ = tf.feasibility(fast, limit)
    assert ceiling > 15.0 and source.startswith("keras lstm, hidden 256")
    # A layer's rate is recounted on the floor (its benchmark counts the input gradient too).
    layer = {"case": "gru fwd+bwd", "hidden": 64, "gflop": 0.619, "gflops": 30.0}
    assert tf.floor_rate(layer) == pytest.approx(30.0 * 64 * floor / 0.619e9)
    assert tf.floor_rate(layer) < 30.0
    with pytest.raises(SystemExit, match="no 1-thread keras lstm 64"):
        tf.feasibility([], limit)
