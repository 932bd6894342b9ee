# ruff: noqa: E501  (the markdown tables of the report are long lines)
"""Physical limit: achieved GFLOP/s of recurrent training vs this machine's matmul GFLOP/s.

In one process and thread, interleaved (A, B, A, B ...): forward + backward of medseq's
LSTM / GRU (``SequenceClassifier``, torch's fused CPU kernels) and GRU-D at batch 64 on the
PhysioNet 2012 tensors (T = 48; input 111 = values + mask + Δt; GRU-D 74 = x̂ + mask), with
FLOPs counted analytically (:mod:`benchkit.flops`: gate matmuls only, so the achieved figure
is a lower bound), against ``torch.mm`` of the per-step shape ``(B, I + H) x (I + H, G H)``
and of a 2048² square. Writes ``benchmarks/results/physical_limit.md`` (and ``.json``).

    python benchmarks/bench_physical_limit.py [--rounds 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_training import TENSORS, ensure_tensors, medseq_model  # noqa: E402
from benchkit.flops import gate_count, matmul_flops, recurrent_flops  # noqa: E402
from benchkit.machine import facts_markdown, machine_facts  # noqa: E402
from benchkit.tensors import load_tensors  # noqa: E402

RESULTS = HERE / "results" / "physical_limit.md"


def timer(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cases(arrays, batch: int, hiddens: list[int]):
    """(name, flops, callable) for every model and matmul, built once."""
    import torch

    b = {k: torch.from_numpy(v[:batch]) for k, v in arrays.items()}
    n_steps, n_features = b["values"].shape[1:]
    out = []
    for cell in ("lstm", "gru", "grud"):
        for hidden in hiddens:
            torch.manual_seed(0)
            model = medseq_model(cell, hidden, n_features)
            inputs = 2 * n_features if cell == "grud" else 3 * n_features

            def train_pass(model=model):
                model.zero_grad(set_to_none=True)
                out = model(values=b["values"], mask=b["mask"], delta=b["delta"],
                            lengths=b["lengths"])  # fmt: skip
                out.sum().backward()

            flops = recurrent_flops(cell, batch, n_steps, inputs, hidden, backward=True)
            out.append((f"{cell} fwd+bwd", hidden, flops, train_pass))
            g = gate_count(cell)
            x = torch.randn(batch, inputs + hidden)
            w = torch.randn(inputs + hidden, g * hidden)
            out.append((f"mm ({batch}, {inputs + hidden}) x ({inputs + hidden}, {g * hidden})",
                        hidden, matmul_flops(batch, inputs + hidden, g * hidden) * 48,
                        lambda x=x, w=w: [x @ w for _ in range(48)]))  # fmt: skip
    big = torch.randn(2048, 2048)
    out.append(("mm 2048 x 2048 x 2048", 0, matmul_flops(2048, 2048, 2048), lambda: big @ big))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3, help="calls per case per round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden", default="64,128,256")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    arrays = load_tensors(ensure_tensors(TENSORS))
    hiddens = [int(h) for h in args.hidden.split(",")]
    todo = cases(arrays, 64, hiddens)
    seconds: dict[int, list[float]] = {i: [] for i in range(len(todo))}
    for r in range(args.rounds):  # interleaved: every case once per round
        for i, (_, _, _, fn) in enumerate(todo):
            seconds[i].append(timer(fn, args.repeats))
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    gflops = {i: todo[i][2] / statistics.median(s) / 1e9 for i, s in seconds.items()}
    square = gflops[len(todo) - 1]
    wall = time.perf_counter() - t_start
    lines = [
        "# Physical limit: recurrent training GFLOP/s vs matmul GFLOP/s",
        "",
        f"Command: `python benchmarks/bench_physical_limit.py {' '.join(sys.argv[1:])}`".rstrip()
        + f", {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {wall:.0f} s wall, "
        f"{args.threads} thread(s), {args.rounds} interleaved rounds × {args.repeats} calls, medians.",
        "",
        "FLOPs are counted analytically from the gate matmuls only: forward "
        "2·B·T·(I+H)·G·H, backward twice that (G = 4 LSTM, 3 GRU and GRU-D); B = 64, T = 48, "
        "I = 111 (values, mask, Δt) for LSTM/GRU and 74 (x̂, mask) for GRU-D. The element-wise "
        "gate arithmetic, pooling, head and GRU-D's decays are not counted, so the achieved "
        "GFLOP/s is a lower bound. The per-step matmul row is 48 calls of the shape one step "
        "of the forward pass multiplies. **Shared 2-core machine**: other agents' jobs ran "
        "during the measurement; the rounds are interleaved so that they slow every row alike.",
        "",
        "| case | hidden | GFLOP per call | median ms | GFLOP/s | % of per-step mm | % of 2048² mm |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    verdict = []
    for i, (name, hidden, flops, _) in enumerate(todo):
        ms = statistics.median(seconds[i]) * 1e3
        row = f"| {name} | {hidden or ''} | {flops / 1e9:.3f} | {ms:.1f} | {gflops[i]:.1f} |"
        if "fwd+bwd" in name:
            step_mm = gflops[i + 1]
            row += f" {gflops[i] / step_mm:.0%} | {gflops[i] / square:.0%} |"
            if name.startswith("lstm") and hidden == max(hiddens):
                verdict.append((gflops[i], step_mm, square))
        else:
            row += " | |"
        lines.append(row)
    if verdict:
        achieved, step_mm, sq = verdict[0]
        best = max(step_mm, sq)
        share = achieved / best
        status = "met" if share >= 0.6 else f"missed by {0.6 - share:.0%} points"
        lines += [
            "",
            f"**Target: LSTM forward + backward at hidden {max(hiddens)} ≥ 60 % of matmul "
            f"GFLOP/s**: {achieved:.1f} vs {best:.1f} GFLOP/s (the faster of the two matmul "
            f"references) = **{share:.0%}**, {status}.",
        ]
    lines += ["", *facts_markdown(machine_facts(["numpy", "torch"]))]
    lines.append(f"- torch threads: {torch.get_num_threads()}; BLAS: "
                 + ("MKL" if torch.backends.mkl.is_available() else "other")
                 + f", oneDNN: {torch.backends.mkldnn.is_available()}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    rows = [
        {"case": name, "hidden": hidden, "gflop": flops / 1e9, "gflops": gflops[i]}
        for i, (name, hidden, flops, _) in enumerate(todo)
    ]
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
