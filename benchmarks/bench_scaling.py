# ruff: noqa: E501  (the markdown tables of the report are long lines)
"""Scaling: training time and peak memory against sequence length and number of patients.

Every point runs in a fresh subprocess, so that its peak resident memory
(``resource.getrusage(...).ru_maxrss``) is its own; the figure reported is the peak *added by
training* (peak minus the RSS after imports, data and model were set up). ``tracemalloc``
would miss torch's allocations, which do not go through Python's allocator.

* Sequence length T = 48 ... 20,000: a GRU (hidden 64, batch 8, ``ConvRNN`` without
  convolutions, so one recurrent step per sample) on windows of the real MIT-BIH record 100
  (2 ECG leads, 360 Hz), one training step (forward, backward, Adam) with full BPTT and with
  truncated BPTT (``TrainConfig.tbptt_steps``'s code path, ``medseq.training.tbptt``, window 200
  steps): time should grow linearly in T for both, memory linearly with full BPTT and not at
  all with truncated BPTT.
* Patients N = 500 ... 4000: one epoch (batch 64) of medseq's GRU (hidden 64) on the first N
  PhysioNet 2012 set-A stays.

Linear fits with R² (``benchkit.fits``). Writes ``benchmarks/results/scaling.md`` and
``scaling.png``.

    python benchmarks/bench_scaling.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchkit.fits import linear_fit  # noqa: E402
from benchkit.machine import facts_markdown, machine_facts  # noqa: E402

RESULTS = HERE / "results" / "scaling.md"
LENGTHS = (48, 1000, 2500, 5000, 10000, 20000)
PATIENTS = (500, 1000, 2000, 3000, 4000)
TBPTT_STEPS = 200
BATCH_T, HIDDEN = 8, 64


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ecg_windows(n_steps: int, batch: int):
    """``batch`` windows of ``n_steps`` samples of MIT-BIH record 100, standardised."""
    import numpy as np

    from medseq.paths import dataset_dir
    from medseq.sources.wfdb_records import read_record

    signal = read_record(dataset_dir("mitdb_full"), "100", annotator=None).samples
    signal = (signal - signal.mean(0)) / signal.std(0)
    starts = np.linspace(0, len(signal) - n_steps, batch).astype(int)
    return np.stack([signal[s : s + n_steps] for s in starts]).astype(np.float32)


def length_worker(n_steps: int, mode: str, repeats: int) -> dict:
    import torch

    from medseq.models import build_model
    from medseq.models.conv_rnn import SignalModelConfig
    from medseq.training.tbptt import check_tbptt_model, tbptt_backward

    torch.set_num_threads(1)
    values = torch.from_numpy(ecg_windows(n_steps, BATCH_T))
    lengths = torch.full((BATCH_T,), n_steps, dtype=torch.int64)
    y = torch.tensor([0.0, 1.0] * (BATCH_T // 2)).view(-1, 1)
    config = SignalModelConfig(in_channels=values.shape[2], n_outputs=1, conv_channels=(),
                               conv_strides=(), cell="gru", hidden_size=HIDDEN,
                               pooling="last")  # fmt: skip
    torch.manual_seed(0)
    model = build_model(config)
    check_tbptt_model(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    base = rss_mib()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        if mode == "tbptt":
            tbptt_backward(model, values, lengths, y, loss_fn, TBPTT_STEPS)
        else:
            loss_fn(model(values, lengths), y).backward()
        optimizer.step()

    times = []
    for _ in range(repeats + 1):  # the first call warms up
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return {"seconds": statistics.median(times[1:]), "peak_extra_mib": rss_mib() - base,
            "base_mib": base}  # fmt: skip


def patients_worker(n_patients: int, repeats: int) -> dict:
    import torch
    from bench_training import TENSORS, medseq_model
    from benchkit.tensors import load_tensors

    torch.set_num_threads(1)
    stored = load_tensors(TENSORS)  # all 4000 stays; the baseline includes them
    base = rss_mib()
    arrays = {k: torch.from_numpy(v[:n_patients].copy()) for k, v in stored.items()}
    del stored
    torch.manual_seed(0)
    model = medseq_model("gru", HIDDEN, arrays["values"].shape[2])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def epoch() -> None:
        for start in range(0, n_patients, 64):
            b = {k: v[start : start + 64] for k, v in arrays.items()}
            optimizer.zero_grad(set_to_none=True)
            out = model(values=b["values"], mask=b["mask"], delta=b["delta"], lengths=b["lengths"])
            loss_fn(out.squeeze(1), b["y"]).backward()
            optimizer.step()

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t0)
    return {"seconds": statistics.median(times), "peak_extra_mib": rss_mib() - base,
            "base_mib": base}  # fmt: skip


def spawn(*worker_args: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", *worker_args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"worker {worker_args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def collect(repeats: int, lengths, patients) -> dict[str, dict[int, list[dict]]]:
    out: dict[str, dict[int, list[dict]]] = {"full": {}, "tbptt": {}, "patients": {}}
    for r in range(repeats):  # interleaved: every point once per round
        for n_steps in lengths:
            for mode in ("full", "tbptt"):
                out[mode].setdefault(n_steps, []).append(spawn("length", str(n_steps), mode))
                print(f"round {r + 1} T={n_steps} {mode}: {out[mode][n_steps][-1]}", flush=True)
        for n in patients:
            out["patients"].setdefault(n, []).append(spawn("patients", str(n)))
            print(f"round {r + 1} N={n}: {out['patients'][n][-1]}", flush=True)
    return out


def medians(points: dict[int, list[dict]], key: str) -> tuple[list[int], list[float]]:
    xs = sorted(points)
    return xs, [statistics.median(p[key] for p in points[x]) for x in xs]


def fit_line(xs, ys, unit: str) -> str:
    fit = linear_fit(xs, ys)
    return f"{fit.slope:.3g} {unit} {fit.intercept:+.3g}, R² = {fit.r2:.4f}"


def report(data, repeats: int, wall: float, command: str) -> str:
    lines = [
        "# Scaling: time and peak memory against sequence length and patients",
        "",
        f"Command: `{command}`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {wall / 60:.1f} min wall.",
        f"Every point in a fresh subprocess, {repeats} interleaved rounds, medians; memory = peak "
        "RSS (`ru_maxrss`) minus the RSS once data and model were set up, i.e. what training "
        "added. **Shared 2-core machine** (other agents' jobs ran meanwhile): times carry their "
        "noise, memory does not.",
        "",
        f"## Sequence length (GRU hidden {HIDDEN}, batch {BATCH_T}, MIT-BIH record 100, 2 leads, one training step)",
        "",
        f"| T | full BPTT s | full BPTT MiB | truncated BPTT ({TBPTT_STEPS} steps) s | truncated MiB |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    xs, t_full = medians(data["full"], "seconds")
    _, m_full = medians(data["full"], "peak_extra_mib")
    _, t_tb = medians(data["tbptt"], "seconds")
    _, m_tb = medians(data["tbptt"], "peak_extra_mib")
    for row in zip(xs, t_full, m_full, t_tb, m_tb, strict=True):
        lines.append("| {} | {:.3f} | {:.1f} | {:.3f} | {:.1f} |".format(*row))
    r2 = {"t_full": linear_fit(xs, t_full).r2, "t_tb": linear_fit(xs, t_tb).r2}
    lines += [
        "",
        f"- time, full BPTT: {fit_line(xs, t_full, 's/step')}",
        f"- time, truncated BPTT: {fit_line(xs, t_tb, 's/step')}",
        f"- memory, full BPTT: {fit_line(xs, m_full, 'MiB/step')}",
        f"- memory, truncated BPTT: {fit_line(xs, m_tb, 'MiB/step')}; range "
        f"{min(m_tb):.1f}–{max(m_tb):.1f} MiB over T = {xs[0]}…{xs[-1]} "
        f"(full BPTT: {min(m_full):.1f}–{max(m_full):.1f} MiB)",
    ]
    ns, t_n = medians(data["patients"], "seconds")
    _, m_n = medians(data["patients"], "peak_extra_mib")
    lines += [
        "",
        f"## Patients (one epoch, GRU hidden {HIDDEN}, batch 64, PhysioNet 2012 set A, T = 48)",
        "",
        "| N | epoch s | peak MiB added (the N stays' tensors + training) |",
        "| ---: | ---: | ---: |",
        *(f"| {n} | {t:.2f} | {m:.1f} |" for n, t, m in zip(ns, t_n, m_n, strict=True)),
        "",
        f"- time: {fit_line(ns, t_n, 's/patient')}",
        f"- memory: {fit_line(ns, m_n, 'MiB/patient')}",
        "",
        "## Targets",
        "",
    ]
    r2_n = linear_fit(ns, t_n).r2
    flat = max(m_tb) - min(m_tb)
    for label, value in (("time linear in T, full BPTT", r2["t_full"]),
                         ("time linear in T, truncated BPTT", r2["t_tb"]),
                         ("time linear in N", r2_n)):  # fmt: skip
        status = "met" if value >= 0.98 else f"missed by {0.98 - value:.3f}"
        lines.append(f"- {label}: R² = {value:.4f} (target ≥ 0.98): {status}")
    lines.append(
        f"- memory flat in T under truncated BPTT: spread {flat:.1f} MiB over a {xs[-1] // xs[0]}× "
        f"longer sequence, while full BPTT grows by {max(m_full) - min(m_full):.1f} MiB"
    )
    lines += ["", *facts_markdown(machine_facts(["numpy", "torch", "wfdb"]))]
    return "\n".join(lines) + "\n"


def plot(data, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for mode, label in (("full", "full BPTT"), ("tbptt", f"truncated BPTT ({TBPTT_STEPS})")):
        xs, ts = medians(data[mode], "seconds")
        _, ms = medians(data[mode], "peak_extra_mib")
        axes[0].plot(xs, ts, "o-", label=label)
        axes[1].plot(xs, ms, "o-", label=label)
    axes[0].set(xlabel="sequence length T", ylabel="s per training step", title="time vs T")
    axes[1].set(xlabel="sequence length T", ylabel="peak MiB added", title="memory vs T")
    ns, ts = medians(data["patients"], "seconds")
    axes[2].plot(ns, ts, "o-")
    axes[2].set(xlabel="patients N", ylabel="s per epoch", title="time vs N (T = 48)")
    for ax in axes[:2]:
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds")
    parser.add_argument(
        "--steps", type=int, default=2, help="timed steps/epochs per worker (make bench: 5)"
    )
    parser.add_argument("--lengths", default=",".join(map(str, LENGTHS)))
    parser.add_argument("--patients", default=",".join(map(str, PATIENTS)))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.worker:
        kind, size, *rest = args.worker
        if kind == "length":
            result = length_worker(int(size), rest[0], args.steps)
        else:
            result = patients_worker(int(size), args.steps)
        print(json.dumps(result))
        return
    t0 = time.perf_counter()
    lengths = [int(x) for x in args.lengths.split(",")]
    patients = [int(x) for x in args.patients.split(",")]
    data = collect(args.repeats, lengths, patients)
    command = ("python benchmarks/bench_scaling.py " + " ".join(sys.argv[1:])).strip()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(data, args.repeats, time.perf_counter() - t0, command))
    args.out.with_suffix(".json").write_text(json.dumps(data, indent=1))
    plot(data, args.out.with_suffix(".png"))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
