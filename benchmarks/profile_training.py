"""Where medseq's training step spends its time: torch.profiler tables per model.

One thread, batch 64, the PhysioNet 2012 tensors; ``--steps`` profiled training steps
(forward, backward, Adam) after warm-up, operators sorted by self CPU time. Evidence for
the result files' "what limits it" notes. Writes ``benchmarks/results/training_profile.md``.

    python benchmarks/profile_training.py [--models lstm:256,gru:256,grud:64,grud:256]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_training import TENSORS, ensure_tensors, medseq_model  # noqa: E402
from benchkit.machine import facts_markdown, machine_facts  # noqa: E402
from benchkit.tensors import load_tensors  # noqa: E402

RESULTS = HERE / "results" / "training_profile.md"


def profile_one(cell: str, hidden: int, arrays, steps: int, rows: int) -> str:
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    model = medseq_model(cell, hidden, arrays["values"].shape[2])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    n = len(arrays["y"])

    def step(i: int) -> None:
        start = (i * 64) % (n - 64)
        b = {k: v[start : start + 64] for k, v in arrays.items()}
        optimizer.zero_grad(set_to_none=True)
        out = model(values=b["values"], mask=b["mask"], delta=b["delta"], lengths=b["lengths"])
        loss_fn(out.squeeze(1), b["y"]).backward()
        optimizer.step()

    for i in range(3):
        step(i)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for i in range(steps):
            step(i)
    table = prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=40,
        max_shapes_column_width=70,
    )  # fmt: skip
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lstm:256,gru:256,grud:64,grud:256")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rows", type=int, default=12)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    arrays = {k: torch.from_numpy(v) for k, v in load_tensors(ensure_tensors(TENSORS)).items()}
    command = ("python benchmarks/profile_training.py " + " ".join(sys.argv[1:])).strip()
    parts = []
    for spec in args.models.split(","):
        cell, hidden = spec.split(":")
        table = profile_one(cell, int(hidden), arrays, args.steps, args.rows)
        parts += [f"## {cell}, hidden {hidden}", "", "```", table.rstrip(), "```", ""]
    lines = [
        "# Profile of medseq's training step (torch.profiler)",
        "",
        f"Command: `{command}`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{time.perf_counter() - t0:.0f} s wall. One thread, batch 64, T = 48, "
        f"{args.steps} profiled steps each. Load average at the end: {os.getloadavg()[0]:.1f}; "
        "when other jobs share the cores, self CPU times include the waiting, so the shares "
        "are what matters.",
        "",
        *parts,
        *facts_markdown(machine_facts(["torch"])),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
