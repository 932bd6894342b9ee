# ruff: noqa: E501  (the markdown tables of the report are long lines)
"""Hardening of the service (issue 21), before and after, in the same run.

The same bundle is served by two source trees: the ``--before`` git revision (extracted
with ``git archive``) and this working tree. For each:

1. single-observation streaming updates from 8 keep-alive connections (real set-B stays
   replayed in time order, as ``bench_serving.py``), twice, alternating the trees;
2. ``/healthz`` latency while one 8 MB ``POST /v1/predict`` of real set-B stays is in
   flight (polled back to back from one connection).

    python benchmarks/bench_serving_hardening.py --before $(git merge-base HEAD main)
    # sets its "## Hardening" section of benchmarks/results/serving.md (between the
    # serving_hardening markers; other sections untouched); compare with the branch's base,
    # not a main that has since taken other branches' changes
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_serving import (  # noqa: E402
    TOKEN,
    free_port,
    plans,
    run_load,
    start_server,
    summarize,
    train_bundle,
)
from benchkit.sections import write_section  # noqa: E402

SECTION = "serving_hardening"  # the marker name of this benchmark's part of serving.md


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def extract(rev: str, dest: Path) -> Path:
    """``src/`` of git revision ``rev`` under ``dest``; returns the folder to put on the path."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], check=True,
                             capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "src"


def start(src: Path, bundle: Path, db: Path, port: int) -> subprocess.Popen:
    """The server of the code tree ``src`` (before or after), on one thread."""
    env = {"PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    return start_server(bundle, db, port, env=env, wait_s=120)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def throughput(src: Path, bundle: Path, work: Path, plan: dict, cap: int) -> dict:
    port = free_port()
    server = start(src, bundle, work / f"t{port}.sqlite", port)
    before = load()
    stats = summarize(run_load(port, plan, dict.fromkeys(plan, 0), 8, cap, 120))
    stop(server)
    return stats | {"load": f"{before} → {load()}"}


def big_body(data, limit: int) -> bytes:
    """Real set-B stays (event rows with UCUM units), as many as fit in ``limit`` bytes."""
    from medseq.datasets.physionet2012_serving import code_table

    table, patients, size = code_table(), [], 20
    for sid in data.static.index.to_numpy()[:256]:
        events = data.events[data.events.subject_id == sid]
        static = {k: float(v) for k, v in data.static.loc[sid].items() if v == v}
        rows = [{"time": float(t), "code": str(c), "value": float(v),
                 "unit": table.entries[str(c)]["unit"]}
                for t, c, v in zip(events.time, events.code, events.value, strict=True)]  # fmt: skip
        item = {"patient_id": f"p{sid}", "static": static, "events": rows}
        size += len(json.dumps(item)) + 2
        if size > limit:
            break
        patients.append(item)
    return json.dumps({"patients": patients}).encode()


def healthz_during(src: Path, bundle: Path, work: Path, body: bytes) -> dict:
    port = free_port()
    server = start(src, bundle, work / f"h{port}.sqlite", port)
    before, times, result = load(), {}, {}

    def big() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        t0 = time.perf_counter()
        conn.request("POST", "/v1/predict", body=body, headers=headers)
        times["sent"] = time.perf_counter()
        answer = conn.getresponse()
        answer.read()
        result["status"], times["done"] = answer.status, time.perf_counter()
        result["seconds"] = times["done"] - t0

    thread = threading.Thread(target=big)
    thread.start()
    polls = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    while thread.is_alive():
        t0 = time.perf_counter()
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        polls.append((t0, time.perf_counter()))
    thread.join()
    stop(server)
    # every poll that overlaps the time the server holds the whole body and works on it
    during = np.array([(b - a) * 1e3 for a, b in polls if b > times["sent"] and a < times["done"]])
    if len(during) == 0:
        during = np.array([np.nan])
    return {"status": result["status"], "big_s": result["seconds"], "polls": len(during),
            "p50_ms": float(np.median(during)), "p99_ms": float(np.percentile(during, 99)),
            "max_ms": float(np.max(during)), "load": f"{before} → {load()}"}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="main", help="git revision to compare with")
    parser.add_argument("--bundle", type=Path, help="default: train bench_serving's GRU-128")
    parser.add_argument("--patients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=1500, help="per throughput run")
    parser.add_argument("--rounds", type=int, default=4, help="throughput runs per tree")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/serving.md")
    args = parser.parse_args()
    import torch

    from medseq.paths import dataset_dir
    from medseq.sources import physionet2012

    torch.set_num_threads(1)
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.before],
                         check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    here = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        label = rev if args.before.startswith(rev) else f"{args.before} {rev}"
        trees = {f"before ({label})": extract(rev, work / "before"),
                 f"after (this tree, HEAD {here})": ROOT / "src"}  # fmt: skip
        bundle = args.bundle or train_bundle(work / "train")
        data = physionet2012.read(dataset_dir("physionet2012") / "set-b.tar.gz")
        plan = plans(data, args.patients, per_obs=True)
        body = big_body(data, 8 * 1024 * 1024 - 1024)
        runs: dict[str, list[dict]] = {name: [] for name in trees}
        for _ in range(args.rounds):  # alternate, so a change of machine load hits both
            for name, src in trees.items():
                runs[name].append(throughput(src, bundle, work, plan, args.requests))
                print(name, runs[name][-1], flush=True)
        health = {}
        for name, src in trees.items():
            health[name] = healthz_during(src, bundle, work, body)
            print(name, health[name], flush=True)
    write_report(args.output, report(runs, health, len(body), args))
    print(f"wrote {args.output}")


def write_report(path: Path, section: str) -> None:
    """Put ``section`` between this benchmark's markers in ``path``; serving.md is shared
    (the memory, kill and signal benchmarks write sections below this one), so nothing
    outside the markers changes. A file from before the markers has its ``## Hardening``
    section (up to the next ``## ``) replaced in place."""
    write_section(path, SECTION, section, legacy_heading="## Hardening")


def report(runs: dict, health: dict, size: int, args) -> str:
    rows = "\n".join(
        f"| {name} | {k + 1} | {r['requests']} | {r['obs_per_s']:.0f} | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms | {r['status']} | {r['load']} |"
        for name, rs in runs.items() for k, r in enumerate(rs)
    )  # fmt: skip
    medians = "\n".join(
        f"| {name} | {np.median([r['obs_per_s'] for r in rs]):.0f} | {np.median([r['p50_ms'] for r in rs]):.1f} ms | {np.median([r['p99_ms'] for r in rs]):.1f} ms |"
        for name, rs in runs.items()
    )  # fmt: skip
    hrows = "\n".join(
        f"| {name} | {h['status']} | {h['big_s']:.2f} s | {h['polls']} | {h['p50_ms']:.1f} ms | {h['p99_ms']:.1f} ms | {h['max_ms']:.1f} ms | {h['load']} |"
        for name, h in health.items()
    )  # fmt: skip
    given = f" --bundle {args.bundle}" if args.bundle else ""
    return f"""## Hardening

`python benchmarks/bench_serving_hardening.py --before {args.before} --patients {args.patients} --requests {args.requests} --rounds {args.rounds}{given}`
(issue 21; both trees serve the same bundle, GRU-128 as above, one after the other on
the same 2-core machine shared with other work: the load average (1/5/15 min) before →
after each run is in the last column, and the absolute figures move with it).

Single-observation streaming updates, 8 keep-alive connections, {args.patients} real set-B
stays replayed in time order, up to {args.requests} requests per run, runs alternating:

| server | run | requests | updates/s | p50 | p99 | statuses | load average |
|---|---:|---:|---:|---:|---:|---|---|
{rows}

Median over the runs:

| server | updates/s | p50 | p99 |
|---|---:|---:|---:|
{medians}

`/healthz` polled back to back from one connection while one `POST /v1/predict` of
{size / 2**20:.1f} MiB (real set-B stays, event rows with units) is in flight:

| server | big request | its time | polls during it | p50 | p99 | max | load average |
|---|---:|---:|---:|---:|---:|---:|---|
{hrows}
"""


if __name__ == "__main__":
    main()
