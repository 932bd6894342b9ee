# ruff: noqa: E501  (the markdown tables of the report are long lines)
"""Fused GRU training path (Python and compiled kernels) vs ``nn.GRU``, interleaved in one process.

Two cases per hidden size (16, the default model's, and 64, 128, 256), at ``bench_training.py``'s shapes (batch 64,
T = 48, input 111 = 37 PhysioNet 2012 variables with mask and Δt; random values, which do
not change the work of a recurrence):

* ``layer``: one ``nn.GRU`` layer, ``out[:, -1].sum().backward()`` (what last-step pooling
  asks of it), through ``nn.GRU`` or :func:`medseq.models.fused_gru.fused_gru` with
  ``kernel="python"`` (the Python loop) or ``"compiled"`` (``csrc/fused_gru_step.cpp``);
* ``train step``: a ``SequenceClassifier`` (GRU, last-step pooling, input ``[values; mask;
  Δt]``) forward + BCE backward + Adam step, with ``fused_gru_mode("off")`` or ``("on")``, the
  latter once with ``MEDSEQ_FUSED_GRU_NO_COMPILE=1`` (Python kernel) and once without.

The three implementations alternate call by call (``A B C C B A ...``) within every round, so
that the load of other jobs on a shared machine falls on both alike; the result is the
**ratio** ``nn.GRU time / fused time`` of the median step (and compiled vs Python), in wall time and in CPU time
(``time.process_time``; other jobs on the core inflate wall time, and CPU time less so).
The load average is read before and after. Writes ``benchmarks/results/fused_gru.md``; a
hand-written part below the line ``<!-- notes -->`` of an existing file is kept.

    python benchmarks/bench_fused_gru.py [--rounds 3] [--reps 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchkit.machine import facts_markdown, machine_facts  # noqa: E402

from medseq.models import ModelConfig, build_model, fused_gru_compiled  # noqa: E402
from medseq.models.fused_gru import fused_gru  # noqa: E402
from medseq.models.fused_select import fused_gru_mode  # noqa: E402

BATCH, STEPS, N_VARS = 64, 48, 37  # as bench_training.py on PhysioNet 2012 set A
INPUT = 3 * N_VARS  # values, mask, Δt
IMPLS = ("nn.GRU", "fused", "compiled")  # fused: the Python kernel
NOTES = "<!-- notes -->"  # what follows this line in the results file is hand-written, kept


def layer_steps(hidden: int) -> dict[str, Callable[[], None]]:
    """One GRU layer forward + backward of the last step's output, both ways."""
    torch.manual_seed(0)
    gru = nn.GRU(INPUT, hidden, batch_first=True)
    x = torch.randn(BATCH, STEPS, INPUT)

    def plain() -> None:
        gru(x)[0][:, -1].sum().backward()

    def fused() -> None:
        fused_gru(gru, x, kernel="python")[0][:, -1].sum().backward()

    def compiled() -> None:
        fused_gru(gru, x, kernel="compiled")[0][:, -1].sum().backward()

    return {"nn.GRU": plain, "fused": fused, "compiled": compiled}


@contextlib.contextmanager
def _python_kernel(active: bool) -> Iterator[None]:
    """Inside: "on"/"auto" see no compiled kernel, as with ``MEDSEQ_FUSED_GRU_NO_COMPILE=1``.

    (The environment variable is read once per process, when the kernel is built; patching
    the loader lets the two kernels alternate call by call without rebuilding.)
    """
    if not active:
        yield
        return
    real = fused_gru_compiled.load_kernel
    fused_gru_compiled.load_kernel = lambda required=False: None  # type: ignore[assignment]
    try:
        yield
    finally:
        fused_gru_compiled.load_kernel = real


def train_steps(hidden: int) -> dict[str, Callable[[], None]]:
    """A SequenceClassifier training step (forward, BCE backward, Adam), both ways."""
    torch.manual_seed(0)
    config = ModelConfig(input_size=N_VARS, cell="gru", hidden_size=hidden, pooling="last",
                         input_mask=True, input_delta=True)  # fmt: skip
    model = build_model(config).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = {
        "values": torch.randn(BATCH, STEPS, N_VARS),
        "mask": (torch.rand(BATCH, STEPS, N_VARS) < 0.3).float(),
        "delta": torch.rand(BATCH, STEPS, N_VARS),
        "lengths": torch.full((BATCH,), STEPS),
    }
    y = (torch.rand(BATCH) < 0.15).float()
    loss_fn = nn.BCEWithLogitsLoss()

    def step(mode: str, compile_: bool = True) -> None:
        optimizer.zero_grad(set_to_none=True)
        with fused_gru_mode(mode), _python_kernel(not compile_):
            loss_fn(model(**batch).squeeze(1), y).backward()
        optimizer.step()

    return {
        "nn.GRU": lambda: step("off"),
        "fused": lambda: step("on", compile_=False),
        "compiled": lambda: step("on"),
    }


def interleaved(fns: dict[str, Callable[[], None]], reps: int, first: int) -> dict[str, dict]:
    """Time ``reps`` calls of each, alternating ``A B C C B A ...``; median wall and CPU seconds."""
    for fn in fns.values():  # warm-up
        fn()
        fn()
    names = list(fns)
    names = names[first:] + names[:first]
    times: dict[str, dict[str, list[float]]] = {n: {"wall": [], "cpu": []} for n in names}
    for r in range(reps):
        for name in names if r % 2 == 0 else names[::-1]:
            w0, c0 = time.perf_counter(), time.process_time()
            fns[name]()
            times[name]["cpu"].append(time.process_time() - c0)
            times[name]["wall"].append(time.perf_counter() - w0)
    return {n: {k: statistics.median(v) for k, v in t.items()} for n, t in times.items()}


def collect(args: argparse.Namespace) -> list[dict]:
    rows = []
    cases = {"layer": layer_steps, "train step": train_steps}
    for r in range(args.rounds):
        for case, make in cases.items():
            for hidden in (int(h) for h in args.hidden.split(",")):
                got = interleaved(make(hidden), args.reps, first=r % 2)
                rows.append({"round": r, "case": case, "hidden": hidden, **{
                    f"{impl}_{k}": got[impl][k] for impl in IMPLS for k in ("wall", "cpu")}})  # fmt: skip
                print(f"round {r + 1}/{args.rounds} {case} {hidden}: cpu ratio "
                      f"python {got['nn.GRU']['cpu'] / got['fused']['cpu']:.2f}, "
                      f"compiled {got['nn.GRU']['cpu'] / got['compiled']['cpu']:.2f}", flush=True)  # fmt: skip
    return rows


def _ratios(rows: list[dict], impl: str, kind: str) -> list[float]:
    """Per-round ``nn.GRU time / impl time`` (``kind``: ``wall`` or ``cpu``)."""
    return [r[f"nn.GRU_{kind}"] / r[f"{impl}_{kind}"] for r in rows]


def report(rows: list[dict], args: argparse.Namespace, meta: dict) -> str:
    lines = [
        "# Fused GRU training path vs nn.GRU (CPU)",
        "",
        f"Command: `{meta['command']}`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{meta['wall'] / 60:.1f} min wall, {args.threads} thread(s). Load average (1, 5, 15 min) "
        f"before: {meta['load_before']}; after: {meta['load_after']}.",
        "",
        f"Batch {BATCH}, T = {STEPS}, input {INPUT}, float32. `layer`: one GRU layer, forward + "
        "backward of the last step's output. `train step`: `SequenceClassifier` (GRU, last-step "
        "pooling) forward + BCE backward + Adam step, `fused_gru_mode('off')` vs `('on')`. `fused`: "
        "the Python kernel of the fused path, `compiled`: the C++ kernel (`csrc/fused_gru_step.cpp`). "
        "The three "
        f"implementations alternate call by call, {args.reps} calls each per round, {args.rounds} "
        "rounds; per round the median call; below the median over rounds (min–max of the "
        "per-round ratios in brackets). **Speed-up = nn.GRU time / fused (or compiled) time** (> 1: "
        "faster than nn.GRU).",
        "",
        "| case | hidden | nn.GRU ms (wall / CPU) | fused ms (wall / CPU) | compiled ms (wall / CPU) "
        "| fused speed-up, wall / CPU | compiled speed-up, wall | compiled speed-up, CPU time |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in dict.fromkeys(r["case"] for r in rows):
        for hidden in dict.fromkeys(r["hidden"] for r in rows):
            sel = [r for r in rows if r["case"] == case and r["hidden"] == hidden]
            med = {k: statistics.median(r[k] for r in sel) * 1e3 for k in sel[0] if "_" in k}
            fused = [statistics.median(_ratios(sel, "fused", k)) for k in ("wall", "cpu")]
            cells = [
                f"**{statistics.median(v):.2f}×** ({min(v):.2f}–{max(v):.2f})"
                for v in (_ratios(sel, "compiled", "wall"), _ratios(sel, "compiled", "cpu"))
            ]
            ms = " | ".join(f"{med[f'{i}_wall']:.1f} / {med[f'{i}_cpu']:.1f}" for i in IMPLS)
            lines.append(f"| {case} | {hidden} | {ms} | {fused[0]:.2f}× / {fused[1]:.2f}× "
                         f"| {cells[0]} | {cells[1]} |")  # fmt: skip
    lines += ["", *facts_markdown(machine_facts(["numpy", "torch"]))]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden", default="16,64,128,256")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "fused_gru.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = lambda: ", ".join(f"{x:.2f}" for x in os.getloadavg())  # noqa: E731
    meta = {
        "load_before": load(),
        "command": " ".join(["python benchmarks/bench_fused_gru.py", *sys.argv[1:]]),
    }
    t0 = time.perf_counter()
    rows = collect(args)
    meta |= {"wall": time.perf_counter() - t0, "load_after": load()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    old = args.out.read_text() if args.out.is_file() else ""
    notes = old[old.index(NOTES) :] if NOTES in old else ""
    args.out.write_text(report(rows, args, meta) + ("\n" + notes if notes else ""))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
