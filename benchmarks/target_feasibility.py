# ruff: noqa: E501  (the markdown tables of the report are long lines)
"""Can any implementation reach the training-speed targets on this core? The FLOP arithmetic.

A target "medseq ≥ k× the peer's samples/s" asks medseq to do its training step's matmul
work ``k`` times as fast as the peer does its own. That work has a floor: whatever the
implementation, one training step of a recurrent layer with ``G`` gate blocks must

* multiply ``[x_t; h_{t-1}]`` by the gate weights every step (forward, ``2·B·T·(I+H)·G·H``),
* form the weight gradients (the same count again), and
* carry the gradient back through ``W_hh`` every step (``2·B·T·H·G·H``; the input needs no
  gradient, so this is the only data-gradient matmul).

Dividing ``k × peer samples/s × floor FLOPs per sample`` gives the GFLOP/s medseq would
have to sustain. This script compares it with the fastest rate anything reached on the same
core in ``benchmarks/bench_physical_limit.py`` (a 2048² matmul, the per-step matmul shapes,
torch's fused oneDNN LSTM kernel, each layer's rate recounted on the same floor). A required rate above that ceiling cannot be reached by
any code, however fused; one below it can in principle. The peers' own rates count
towards the ceiling: a peer that outruns every medseq kernel sets it. It reads the JSON files that
``make bench`` writes and writes ``benchmarks/results/target_feasibility.md``.

    python benchmarks/target_feasibility.py
"""

from __future__ import annotations

import json
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchkit.flops import gate_count  # noqa: E402

RESULTS = HERE / "results"
BATCH, STEPS = 64, 48
#: Input width of each medseq model on the PhysioNet 2012 tensors (values, mask, Δt; GRU-D x̂, mask).
INPUTS = {"lstm": 111, "gru": 111, "grud": 74}
#: Issue 19's targets: medseq / peer samples/s, and at hidden 256 a share of the ceiling.
TARGETS = {"lstm": ("keras", 1.0), "gru": ("keras", 1.2), "grud": ("pypots", 2.5)}
CEILING_SHARE, CEILING_HIDDEN = 0.75, 256
#: medseq's variants in ``training_throughput.json`` (bench_training.VARIANTS): the faster counts.
MEDSEQ_LIBS = ("medseq", "medseq-fused")


def floor_flops_per_sample(cell: str, hidden: int) -> float:
    """Matmul FLOPs one training sample needs at the least (forward, weight grads, dh)."""
    g, i = gate_count(cell), INPUTS[cell]
    forward = 2 * STEPS * (i + hidden) * g * hidden
    return 2 * forward + 2 * STEPS * hidden * g * hidden


def floor_rate(row: dict) -> float:
    """A ``physical_limit.json`` row's GFLOP/s, recounted on the floor for layer rows.

    ``bench_physical_limit`` counts a layer's backward as twice its forward, input gradient
    included; a fused kernel that skips the input gradient (the input needs none) then
    looks faster than it is. Recounting on the floor keeps one count for every rate here.
    """
    cell = row["case"].split()[0]
    if "fwd+bwd" not in row["case"] or cell not in INPUTS:
        return row["gflops"]
    return (
        row["gflops"] * BATCH * floor_flops_per_sample(cell, row["hidden"]) / (row["gflop"] * 1e9)
    )


def median_rate(rows: list[dict], lib: str, model: str, hidden: int) -> float:
    rates = [r["samples_per_s"] for r in rows
             if r["lib"] == lib and r["model"] == model and r["hidden"] == hidden and r["threads"] == 1]  # fmt: skip
    if not rates:
        raise SystemExit(f"no 1-thread {lib} {model} {hidden} rows in training_throughput.json")
    return statistics.median(rates)


def medseq_rate(rows: list[dict], model: str, hidden: int) -> tuple[float, str]:
    """The faster medseq variant's median samples/s for one cell, and which variant it was."""
    found = sorted({r["lib"] for r in rows if r["lib"] in MEDSEQ_LIBS and r["model"] == model})
    if not found:
        raise SystemExit(f"no medseq {model} rows in training_throughput.json")
    return max((median_rate(rows, lib, model, hidden), lib) for lib in found)


def feasibility(throughput: list[dict], limit: list[dict]) -> tuple[float, str, list[dict]]:
    """The ceiling (GFLOP/s, what reached it) and one row per target and hidden size."""
    rows = []
    for cell, (peer, ratio) in TARGETS.items():
        for hidden in (64, 128, 256):
            rate = median_rate(throughput, peer, cell, hidden)
            ours, variant = medseq_rate(throughput, cell, hidden)
            per_sample = floor_flops_per_sample(cell, hidden)
            rows.append({"cell": cell, "peer": peer, "ratio": ratio, "hidden": hidden,
                         "peer_samples_per_s": rate, "floor_flop_per_sample": per_sample,
                         "peer_gflops": rate * per_sample / 1e9,
                         "required_gflops": ratio * rate * per_sample / 1e9,
                         "medseq_variant": variant, "medseq_samples_per_s": ours,
                         "medseq_gflops": ours * per_sample / 1e9})  # fmt: skip
    measured = [dict(r, gflops=floor_rate(r)) for r in limit]
    best = max(measured, key=lambda r: r["gflops"])
    ceiling = best["gflops"]
    source = best["case"] + (f", hidden {best['hidden']}" if best["hidden"] else "")
    fastest_peer = max(rows, key=lambda r: r["peer_gflops"])
    if fastest_peer["peer_gflops"] > ceiling:  # the peer itself outran every medseq kernel
        ceiling = fastest_peer["peer_gflops"]
        source = f"{fastest_peer['peer']} {fastest_peer['cell']}, hidden {fastest_peer['hidden']}"
    for row in rows:
        row["reachable"] = row["required_gflops"] <= ceiling
        row["medseq_share"] = row["medseq_gflops"] / ceiling
    return ceiling, source, rows


def main() -> None:
    throughput = json.loads((RESULTS / "training_throughput.json").read_text())
    limit = json.loads((RESULTS / "physical_limit.json").read_text())
    ceiling, source, rows = feasibility(throughput, limit)
    lines = [
        "# Training-speed targets against the FLOP ceiling of this core",
        "",
        f"Command: `python benchmarks/target_feasibility.py`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
        "from `training_throughput.json` and `physical_limit.json` of the same `make bench` run.",
        "",
        "Floor FLOPs per sample = the matmul work any implementation of the layer must do in a "
        "training step (forward gate matmuls, their weight gradients, the gradient through "
        "`W_hh`; B = 64, T = 48). Required rate = target ratio × peer samples/s × floor FLOPs. "
        "Ceiling = the fastest rate anything reached on this core in the run (matmuls; torch's "
        f"fused LSTM and the peers, both on the floor count): **{ceiling:.1f} GFLOP/s** ({source}). "
        "The peer's own rate on the floor count shows how close the peer already is.",
        "",
        "| target | hidden | peer samples/s | floor MFLOP per sample | peer's rate (GFLOP/s) | required rate (GFLOP/s) | required / ceiling | reachable on this core? | medseq (faster variant) GFLOP/s | medseq / ceiling |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for r in rows:
        verdict = "in principle" if r["reachable"] else "**no**: above the ceiling"
        lines.append(
            f"| medseq {r['cell']} ≥ {r['ratio']:g}× {r['peer']} | {r['hidden']} | "
            f"{r['peer_samples_per_s']:.0f} | {r['floor_flop_per_sample'] / 1e6:.1f} | "
            f"{r['peer_gflops']:.1f} | {r['required_gflops']:.1f} | "
            f"{r['required_gflops'] / ceiling:.2f} | {verdict} | "
            f"{r['medseq_gflops']:.1f} ({r['medseq_variant']}) | {r['medseq_share']:.2f} |"
        )
    share = [r for r in rows if r["hidden"] == CEILING_HIDDEN]
    lines += [
        "",
        f"At hidden {CEILING_HIDDEN}, each medseq cell's share of the ceiling (target ≥ "
        f"{CEILING_SHARE:.0%}): "
        + "; ".join(
            f"{r['cell']} {r['medseq_share']:.0%} "
            + ("(met)" if r["medseq_share"] >= CEILING_SHARE else "(**missed**)")
            for r in share
        )
        + ".",
    ]
    lines += [
        "",
        "The floor leaves out the element-wise gate arithmetic, GRU-D's decays and "
        "imputation, the head and the optimizer step, all of which add time; so a required "
        "rate near the ceiling is out of reach in practice too.",
    ]
    out = RESULTS / "target_feasibility.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
