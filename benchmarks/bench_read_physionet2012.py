"""Benchmark: read PhysioNet 2012 sets A and B with medseq versus a per-file pandas loop.

Each implementation runs in a fresh Python subprocess (so that the peak resident memory,
``resource.getrusage(...).ru_maxrss``, is its own), ``--repeats`` times; the table shows
the median wall time of the read (imports excluded) and the largest peak RSS. The
baseline applies the same rules as medseq (same descriptors, same physiologic ranges,
same merge of same-time repeats), one file at a time, and a separate check asserts that
both produce the same tables. With ``--tensors`` each reader goes on to the hourly
``(N, 48, 37)`` grid (values, mask, hours since last observation, lengths): medseq's
vectorised ``Discretizer`` against a per-stay pandas ``groupby``/``unstack``/``ffill``, checked
equal the same way. Writes ``benchmarks/results/read_physionet2012.md``.

Usage: ``python benchmarks/bench_read_physionet2012.py [--data DIR] [--repeats N] [--tensors]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tarfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from medseq.sources import physionet2012

RESULTS = Path(__file__).resolve().parent / "results" / "read_physionet2012.md"
SETS = ("a", "b")
STATIC_ONLY = ("Age", "Gender", "Height", "ICUType")
LOWS = {name: low for name, (low, _) in physionet2012.VALID_RANGES.items()}
HIGHS = {name: high for name, (_, high) in physionet2012.VALID_RANGES.items()}


def read_with_pandas(archive: Path, outcomes: Path) -> dict[str, pd.DataFrame]:
    """The straightforward reader: ``pd.read_csv`` per record file, then concatenate."""
    events, static = [], {}
    with tarfile.open(archive) as tar:
        for member in tar:
            if not (member.isfile() and member.name.endswith(".txt")):
                continue
            rid = int(Path(member.name).stem)
            frame = pd.read_csv(tar.extractfile(member), dtype={"Value": float})
            one_events, static[rid] = _one_record(frame, rid)
            events.append(one_events)
    table = pd.concat(events, ignore_index=True)
    table = table.sort_values(["subject_id", "time"], kind="stable", ignore_index=True)
    table["code"] = table["code"].astype(str)
    static_frame = pd.DataFrame.from_dict(static, orient="index").sort_index()
    return {"events": table, "static": static_frame, "outcomes": pd.read_csv(outcomes)}


def _one_record(frame: pd.DataFrame, rid: int) -> tuple[pd.DataFrame, dict[str, float]]:
    parts = frame["Time"].str.split(":", expand=True).astype(int)
    frame["time"] = parts[0] + parts[1] / 60.0
    name = frame["Parameter"]
    weight0 = (name == "Weight") & (frame["time"] == 0)
    descriptor_weight = weight0 & (weight0.cumsum() == 1)
    first = ~frame.duplicated("Parameter")
    rows = frame[(name.isin(STATIC_ONLY) & first) | descriptor_weight]
    static = {p: np.nan for p in physionet2012.DESCRIPTORS}
    for parameter, value in zip(rows["Parameter"], rows["Value"], strict=True):
        low, high = physionet2012.VALID_RANGES[parameter]
        static[parameter] = value if low <= value <= high else np.nan
    keep = name.isin(physionet2012.VARIABLES) & ~descriptor_weight
    ev = frame[keep]
    low = ev["Parameter"].map(LOWS).astype(float)
    high = ev["Parameter"].map(HIGHS).astype(float)
    ok = (ev["Value"] >= low) & (ev["Value"] <= high)
    integer = ev["Parameter"].isin(["GCS", "MechVent"])
    ev = ev[ok & (~integer | (ev["Value"] == ev["Value"].round()))]
    grouped = ev.groupby(["time", "Parameter"], sort=False)["Value"]
    merged = grouped.mean().where(
        grouped.mean().index.get_level_values("Parameter") != "Urine", grouped.sum()
    )
    out = merged.reset_index().rename(columns={"Parameter": "code", "Value": "value"})
    out.insert(0, "subject_id", np.int64(rid))
    return out[["subject_id", "time", "code", "value"]], static


def read_with_medseq(archive: Path, outcomes: Path) -> dict[str, pd.DataFrame]:
    data = physionet2012.read(archive, outcomes=outcomes)
    return {"events": data.events, "static": data.static, "outcomes": data.outcomes}


READERS = {"medseq": read_with_medseq, "pandas": read_with_pandas}
N_STEPS = 48


def grid_with_pandas(events: pd.DataFrame, ids: np.ndarray) -> dict[str, np.ndarray]:
    """The straightforward grid: per stay, bin, keep the latest per bin, unstack, ffill."""
    variables = list(physionet2012.VARIABLES)
    values = np.full((len(ids), N_STEPS, len(variables)), np.nan)
    row_of = {sid: i for i, sid in enumerate(ids)}
    steps = np.arange(N_STEPS, dtype=float)
    for sid, stay in events.groupby("subject_id", sort=False):
        stay = stay[(stay["time"] >= 0) & (stay["time"] <= N_STEPS)]
        bins = np.minimum(np.floor(stay["time"] + 1e-9), N_STEPS - 1).astype(int)
        stay = stay.assign(bin=bins).sort_values(["time", "value"], kind="stable")
        latest = stay.groupby(["bin", "code"])["value"].last().unstack("code")
        values[row_of[sid]] = latest.reindex(index=range(N_STEPS), columns=variables).to_numpy()
    mask = ~np.isnan(values)
    delta = np.zeros_like(values)
    lengths = np.ones(len(ids), dtype=np.int64)
    for i in range(len(ids)):
        # GRU-D's delta: hours since the last observation before t (step 0 if none yet)
        seen = pd.DataFrame(np.where(mask[i], steps[:, None], np.nan)).ffill().shift(1)
        delta[i] = steps[:, None] - seen.fillna(0.0).to_numpy()
        observed = np.flatnonzero(mask[i].any(axis=1))
        lengths[i] = observed[-1] + 1 if len(observed) else 1
    return {"values": values, "mask": mask, "delta": delta, "lengths": lengths}


def grid_with_medseq(events: pd.DataFrame, ids: np.ndarray) -> dict[str, np.ndarray]:
    from medseq.features.icu.discretizer import Discretizer

    grid = Discretizer(n_steps=N_STEPS).transform(events, ids, list(physionet2012.VARIABLES))
    return {"values": grid.values, "mask": grid.mask, "delta": grid.delta, "lengths": grid.lengths}


GRIDS = {"medseq": grid_with_medseq, "pandas": grid_with_pandas}


def worker(name: str, data_dir: Path, tensors: bool = False) -> None:
    """Run one reader on A and B (then its grid); print a JSON line with seconds and peak RSS."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    n_events = 0
    for s in SETS:
        tables = READERS[name](data_dir / f"set-{s}.tar.gz", data_dir / f"Outcomes-{s}.txt")
        n_events += len(tables["events"])
        if tensors:
            grid = GRIDS[name](tables["events"], tables["static"].index.to_numpy())
            del grid
        del tables
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    result = {"seconds": seconds, "peak_mib": peak / 1024, "import_mib": before / 1024}
    print(json.dumps({**result, "n_events": n_events}))


def check_same(data_dir: Path) -> str:
    """Both readers give the same events and descriptors on set A and B."""
    for s in SETS:
        args = (data_dir / f"set-{s}.tar.gz", data_dir / f"Outcomes-{s}.txt")
        ours, theirs = read_with_medseq(*args), read_with_pandas(*args)
        pd.testing.assert_frame_equal(
            ours["events"], theirs["events"], check_dtype=False, check_exact=False, rtol=1e-12
        )
        np.testing.assert_array_equal(ours["static"].to_numpy(), theirs["static"].to_numpy())
    return "identical events and static descriptors on sets A and B"


def check_same_grid(data_dir: Path) -> str:
    """Both grids agree on set A: values (NaN where unobserved), mask, Δt and lengths."""
    tables = read_with_medseq(data_dir / "set-a.tar.gz", data_dir / "Outcomes-a.txt")
    ids = tables["static"].index.to_numpy()
    ours = grid_with_medseq(tables["events"], ids)
    theirs = grid_with_pandas(tables["events"], ids)
    pad = np.arange(N_STEPS)[None, :] >= ours["lengths"][:, None]
    theirs["delta"][np.broadcast_to(pad[:, :, None], theirs["delta"].shape)] = 0.0
    for key in ("values", "mask", "delta", "lengths"):
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-12, err_msg=key)
    return "identical grids (values, masks, Δt, lengths) on set A"


def run(name: str, data_dir: Path, tensors: bool = False) -> dict:
    command = [sys.executable, __file__, "--worker", name, "--data", str(data_dir)]
    command += ["--tensors"] * tensors
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import pyarrow

    return {
        "CPU": cpu,
        "CPU threads (usable / total)": f"{usable} / {os.cpu_count()}",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "pyarrow": pyarrow.__version__,
    }


def count_rows(data_dir: Path) -> tuple[int, int]:
    """Record files and rows below their headers in sets A and B."""
    n_files = n_rows = 0
    for s in SETS:
        with tarfile.open(data_dir / f"set-{s}.tar.gz") as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(".txt"):
                    n_files += 1
                    n_rows += tar.extractfile(member).read().count(b"\n") - 1
    return n_files, n_rows


LABELS = {
    "medseq": "medseq `physionet2012.read`",
    "pandas": "pandas loop per file",
    "medseq+tensors": "medseq read + `Discretizer` grid",
    "pandas+tensors": "pandas loop per file + per-stay pandas grid",
}


def report(
    results: dict[str, list[dict]], checks: list[str], repeats: int, data_dir: Path, wall: float
) -> str:
    rows = {}
    for name, runs in results.items():
        rows[name] = (
            statistics.median(r["seconds"] for r in runs),
            max(r["peak_mib"] for r in runs),
            runs[0]["import_mib"],
        )
    n_files, n_rows = count_rows(data_dir)
    n_events = results["medseq"][0]["n_events"]
    tensors = " --tensors" if "medseq+tensors" in results else ""
    lines = [
        "# Reading PhysioNet 2012 sets A + B",
        "",
        f"{n_files} stays, {n_rows:,} rows below the file headers, {n_events:,} events kept "
        "(both readers).",
        "",
        f"Command: `python benchmarks/bench_read_physionet2012.py --repeats {repeats}{tensors}` "
        f"on `{data_dir}`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {wall:.0f} s wall.",
        "Each reader runs in a fresh subprocess, interleaved; wall time of the work only "
        f"(median of {repeats}), peak RSS of the process (`ru_maxrss`, imports included). "
        "With tensors: read, then the hourly (N, 48, 37) grid of values, mask, Δt and lengths "
        "of each set. The machine's 2 cores are shared with other agents' jobs: compare "
        "the speed-ups, not the seconds.",
        "",
        "| reader | wall time (s) | peak RSS (MiB) | after imports (MiB) | speed-up vs pandas |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, (seconds, peak, imports) in rows.items():
        base = rows["pandas+tensors" if name.endswith("+tensors") else "pandas"]
        lines.append(
            f"| {LABELS[name]} | {seconds:.2f} | {peak:.0f} | {imports:.0f} "
            f"| {base[0] / seconds:.1f}x |"
        )
    lines += ["", *(f"Check: {c}." for c in checks), "", "## Machine", ""]
    lines += [f"- {key}: {value}" for key, value in machine().items()]
    lines.append(f"- load average (1, 5, 15 min) at write time: {os.getloadavg()}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="the physionet2012 folder")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tensors", action="store_true", help="also time read + grid")
    parser.add_argument("--worker", choices=sorted(READERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.data is None:
        from medseq.paths import dataset_dir

        args.data = dataset_dir("physionet2012")
    if args.worker:
        worker(args.worker, args.data, args.tensors)
        return
    start = time.perf_counter()
    names = ["medseq", "pandas"] + ["medseq+tensors", "pandas+tensors"] * args.tensors
    results: dict[str, list[dict]] = {name: [] for name in names}
    for i in range(args.repeats):
        for name in results:
            reader, _, stage = name.partition("+")
            results[name].append(run(reader, args.data, tensors=bool(stage)))
            print(f"run {i + 1}/{args.repeats} {name}: {results[name][-1]}", flush=True)
    checks = [check_same(args.data)] + [check_same_grid(args.data)] * args.tensors
    text = report(results, checks, args.repeats, args.data, time.perf_counter() - start)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
