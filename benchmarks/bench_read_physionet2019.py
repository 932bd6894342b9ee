"""Benchmark: read PhysioNet 2019 sets A and B with medseq versus a per-file pandas loop.

The issue's target: all ~36,000 staged patients into the event table in <= 10 s on this
machine. Each reader runs in a fresh Python subprocess (its own peak RSS, ``ru_maxrss``);
the table shows the wall time of the read (imports excluded), the CPU time of the process
over the read (all threads: the shared 2-core machine makes wall time depend on other
jobs, CPU time much less) and the load average before and after. The baseline is the
straightforward reader: ``pd.read_csv`` per ``.psv`` member of the archives, ``melt`` of the
34 variables, drop NaN and the values outside ``VALID_RANGES``, concatenate, sort; a check
asserts it gives the same event table as medseq. Writes
``benchmarks/results/read_physionet2019.md``.

Usage: ``python benchmarks/bench_read_physionet2019.py [--data DIR] [--readers medseq,pandas]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tarfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from medseq.sources import physionet2019

RESULTS = Path(__file__).resolve().parent / "results" / "read_physionet2019.md"
ARCHIVES = ("training_setA.tar.gz", "training_setB.tar.gz")


def read_with_pandas(root: Path) -> pd.DataFrame:
    """One ``read_csv`` per patient file, melted to the long table."""
    variables = list(physionet2019.VARIABLES)
    low = pd.Series({v: r[0] for v, r in physionet2019.VALID_RANGES.items()})
    high = pd.Series({v: r[1] for v, r in physionet2019.VALID_RANGES.items()})
    parts = []
    for name in ARCHIVES:
        with tarfile.open(root / name) as tar:
            for member in tar:
                if not (member.isfile() and member.name.endswith(".psv")):
                    continue
                frame = pd.read_csv(tar.extractfile(member), sep="|")
                long = frame.melt(id_vars=["ICULOS"], value_vars=variables, var_name="code")
                long = long.dropna(subset=["value"])
                ok = long["value"].between(
                    long["code"].map(low).astype(float), long["code"].map(high).astype(float)
                )
                long = long[ok]
                long.insert(0, "subject_id", int(Path(member.name).stem[1:]))
                parts.append(long)
    table = pd.concat(parts, ignore_index=True).rename(columns={"ICULOS": "time"})
    order = pd.Categorical(table["code"], categories=variables).codes
    table = table.assign(_c=order).sort_values(["subject_id", "time", "_c"], kind="stable")
    table = table.drop(columns="_c").reset_index(drop=True)
    table["time"] = table["time"].astype(np.float64)
    return table[["subject_id", "time", "code", "value"]]


def read_with_medseq(root: Path) -> pd.DataFrame:
    return physionet2019.read(root).events


READERS = {"medseq": read_with_medseq, "pandas": read_with_pandas}


def _child(reader: str, root: Path, out: Path | None) -> None:
    """Run one reader in this (fresh) process and print its figures as JSON."""
    load_before = os.getloadavg()
    wall, cpu = time.perf_counter(), time.process_time()
    events = READERS[reader](root)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if out is not None:
        events.to_parquet(out)
    print(
        json.dumps(
            {
                "wall_s": wall,
                "cpu_s": cpu,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "n_events": len(events),
                "n_subjects": int(events["subject_id"].nunique()),
                "load_before": load_before,
                "load_after": os.getloadavg(),
            }
        )
    )


def _run(reader: str, root: Path, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", reader, "--data", str(root), "--out", str(out)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _write(rows: dict[str, dict], same: bool | None, root: Path, total_s: float) -> None:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    base = rows.get("pandas", {}).get("wall_s")
    lines = [
        "# Reading PhysioNet 2019 sets A + B (the ~36,000 staged patients)",
        "",
        f"Command: `nice python benchmarks/bench_read_physionet2019.py` on `{root}`, {stamp}, "
        f"{total_s:.0f} s in all. Each reader in a fresh subprocess, one run each. The 2 "
        "cores are shared with other jobs: the CPU time (all threads of the process) is the "
        "figure to compare across runs; wall time depends on the load shown beside it.",
        "",
        "| reader | events | wall (s) | CPU (s) | peak RSS (MiB) | load avg before -> after "
        "| wall speed-up |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for name, r in rows.items():
        speed = f"{base / r['wall_s']:.1f}x" if base else "-"
        load = f"{r['load_before'][0]:.1f} -> {r['load_after'][0]:.1f}"
        lines.append(
            f"| {name} | {r['n_events']:,} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
            f"{r['peak_rss_mib']:.0f} | {load} | {speed} |"
        )
    if same is not None:
        lines += ["", f"Check: identical event tables from both readers: {same}."]
    lines += [
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads, "
        f"Python {platform.python_version()}, pandas {pd.__version__}, numpy {np.__version__}.",
    ]
    RESULTS.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--readers", default="medseq,pandas")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.data is None:
        from medseq.paths import dataset_dir

        args.data = dataset_dir("physionet2019")
    if args.child:
        _child(args.child, args.data, args.out)
        return
    start, rows = time.perf_counter(), {}
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    for reader in args.readers.split(","):
        rows[reader] = _run(reader, args.data, tmp / f"sepsis_bench_{reader}.parquet")
        print(reader, rows[reader], flush=True)
    same = None
    if len(rows) == 2:
        a, b = (pd.read_parquet(tmp / f"sepsis_bench_{r}.parquet") for r in rows)
        a["code"], b["code"] = a["code"].astype(str), b["code"].astype(str)
        same = bool(a.equals(b))
    _write(rows, same, args.data, time.perf_counter() - start)
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
