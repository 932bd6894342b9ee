"""GRU-D training step: the Python hidden loop vs the compiled one, interleaved, CPU time.

A ``GRUD`` (37 variables, static 3, last-step pooling) at ``bench_training.py``'s shapes
(batch 64, T = 48, full-length sequences, random values) takes a forward + BCE backward +
Adam step with ``fused_gru_mode("off")`` (``GRUDRecurrence``, the Python loop) and
``("auto")`` (``CompiledGRUDRecurrence``, ``csrc/fused_gru_step.cpp``), alternating call by
call so that the load of a shared machine falls on both alike. Prints the median CPU time
per step and the ratio; the notes of ``results/fused_gru.md`` quote it.

    python benchmarks/bench_grud_compiled.py [--reps 20] [--hidden 64,128,256]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "unit" / "models"))

from model_batches import make_batch  # noqa: E402

from medseq.models import ModelConfig  # noqa: E402
from medseq.models.fused_select import fused_gru_mode  # noqa: E402
from medseq.models.grud import GRUD  # noqa: E402

BATCH, STEPS, N_VARS = 64, 48, 37


def time_hidden(hidden: int, reps: int) -> dict[str, float]:
    """Median CPU seconds of a training step with each loop."""
    torch.manual_seed(0)
    model = GRUD(ModelConfig(input_size=N_VARS, kind="grud", hidden_size=hidden, static_size=3))
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = make_batch(batch=BATCH, n_steps=STEPS, n_features=N_VARS, lengths=[STEPS] * BATCH)
    y = (torch.rand(BATCH) < 0.15).float()

    def step(mode: str) -> None:
        optimizer.zero_grad(set_to_none=True)
        with fused_gru_mode(mode):
            logits = model(**batch).squeeze(1)
            nn.functional.binary_cross_entropy_with_logits(logits, y).backward()
        optimizer.step()

    times: dict[str, list[float]] = {"off": [], "auto": []}
    for mode in times:  # warm-up (and the build of the compiled loop, outside the timing)
        step(mode)
        step(mode)
    for r in range(reps):
        for mode in ("off", "auto") if r % 2 == 0 else ("auto", "off"):
            start = time.process_time()
            step(mode)
            times[mode].append(time.process_time() - start)
    return {mode: statistics.median(t) for mode, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--hidden", default="64,128,256")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("load average before:", ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    for hidden in (int(h) for h in args.hidden.split(",")):
        got = time_hidden(hidden, args.reps)
        ratio = got["off"] / got["auto"]
        print(
            f"GRU-D hidden {hidden}: Python loop {got['off'] * 1e3:.1f} ms CPU, compiled "
            f"{got['auto'] * 1e3:.1f} ms CPU, speed-up {ratio:.2f}×",
            flush=True,
        )
    print("load average after:", ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
