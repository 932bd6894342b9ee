"""Benchmark: training throughput of one process versus ``torchrun`` DDP on CPU (gloo).

Trains a medseq GRU (hidden 64, mean pooling) on synthetic PhysioNet-shaped data (48 hourly
steps, 37 variables with masks and deltas, 10 static columns) in global batches of 64, one
torch thread per process, and reports training samples per second over ``--epochs`` epochs
(the validation set is 64 samples, so validation barely counts). With N processes each one
runs 1/N of every batch, so the speed-up depends on the free cores and the all-reduce cost.
Writes ``benchmarks/results/ddp_cpu.md``.

Usage: ``python benchmarks/bench_ddp_cpu.py [--processes 1 2] [--n-samples 4096]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medseq.models import ModelConfig, build_model
from medseq.training import TrainConfig, Trainer

RESULTS = Path(__file__).resolve().parent / "results" / "ddp_cpu.md"


def _data(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, 48, 37)).astype(np.float32)
    mask = (rng.random((n, 48, 37)) < 0.3).astype(np.float32)
    return {
        "values": values,
        "mask": mask,
        "delta": np.cumsum(1.0 - mask, axis=1).astype(np.float32) / 48.0,
        "lengths": rng.integers(12, 49, size=n).astype(np.int64),
        "static": rng.normal(size=(n, 10)).astype(np.float32),
        "y": (values[:, :, 0].mean(1) > 0).astype(np.float32),
    }


def worker(n_samples: int, epochs: int, out: Path) -> None:
    """Train once (alone or as one torchrun rank); rank 0 writes samples per second."""
    torch.manual_seed(0)
    config = ModelConfig(input_size=37, hidden_size=64, static_size=10, pooling="mean")
    model = build_model(config)
    train_cfg = TrainConfig(
        epochs=epochs, batch_size=64, patience=None, num_threads=1, progress=False
    )
    start = time.perf_counter()
    Trainer(train_cfg).fit(model, _data(n_samples, 0), _data(64, 1))
    seconds = time.perf_counter() - start
    if os.environ.get("RANK", "0") == "0":
        out.write_text(json.dumps({"seconds": seconds, "per_s": n_samples * epochs / seconds}))


def _launch(processes: int, n_samples: int, epochs: int, out: Path) -> dict[str, float]:
    args = [str(Path(__file__).resolve()), "--worker", str(out)]
    args += ["--n-samples", str(n_samples), "--epochs", str(epochs)]
    if processes == 1:
        command = [sys.executable, *args]
    else:
        launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        command = [sys.executable, *launcher, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command, check=True, env=env, capture_output=True)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--n-samples", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.n_samples, args.epochs, args.worker)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.processes:
            result = _launch(n, args.n_samples, args.epochs, Path(tmp) / f"{n}.json")
            rows.append(f"| {n} | {result['seconds']:.1f} | {result['per_s']:.0f} |")
            print(rows[-1], flush=True)
    header = [
        "# Training throughput: one process vs torchrun DDP on CPU (gloo)",
        "",
        f"`python benchmarks/bench_ddp_cpu.py --n-samples {args.n_samples} "
        f"--epochs {args.epochs}` on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} logical CPUs, torch {torch.__version__}, one thread per process; "
        "GRU hidden 64, global batch 64, 48 steps x 37 variables.",
        "",
        "| processes | seconds | training samples/s |",
        "|---:|---:|---:|",
    ]
    RESULTS.write_text("\n".join(header + rows) + "\n")


if __name__ == "__main__":
    main()
