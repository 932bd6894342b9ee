# ruff: noqa: E501  (the markdown tables of the report are long lines)
"""Serving benchmark on real PhysioNet 2012 stays (loopback only, bounded, stops by itself).

1. In process: one streaming update (GRU, 128 hidden units) vs recomputing the history.
2. Over HTTP (uvicorn on 127.0.0.1, 2 cores shared with this client): simulated patients
   replay real set-B stays in time order; throughput, p50/p99 latency.
3. kill -9 under load, restart on the same SQLite file: acknowledged observations lost,
   and the final risks against an uninterrupted in-process run.
4. The malformed-input suite against the live server: count of 5xx answers.

    python benchmarks/bench_serving.py            # writes benchmarks/results/serving.md
    python benchmarks/bench_serving.py --only http,step   # prints those figures only
    python benchmarks/bench_serving.py --only http --before /tmp/main/src --rounds 3
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np

TOKEN = "bench-token-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[1]


def train_bundle(out: Path) -> Path:
    """A GRU with 128 hidden units, summary fusion, trained briefly on 1000 set-A stays."""
    from medseq.experiment import parse_config, run_experiment

    raw = {
        "name": "bench_gru128", "seeds": [0],
        "data": {"max_subjects": 1000, "val_fraction": 0.25},
        "features": {"static_summary": True, "delta_scale": "horizon"},
        "model": {"cell": "gru", "hidden_size": 128, "pooling": "mean", "input_delta": True},
        "train": {"epochs": 2, "lr": 3e-3, "monitor": "auroc", "progress": False},
        "evaluate": {"n_boot": 20},
    }  # fmt: skip
    config = replace(parse_config(raw), output_dir=str(out))
    return Path(run_experiment(config, progress=False).bundle_dir)


def stays(data, n: int, start: int = 0):
    ids = data.static.index.to_numpy()[start : start + n]
    for sid in ids:
        events = data.events[data.events.subject_id == sid]
        static = {k: float(v) for k, v in data.static.loc[sid].items() if v == v}
        yield int(sid), events, static


def in_process(bundle, data, n_stays: int) -> dict:
    """Per-observation update latency vs recomputing the full history each time."""
    from medseq.serving.engine import Observation, StreamingEngine

    engine = StreamingEngine(bundle)
    stream, recompute, forward = [], [], []
    for k, (sid, events, static) in enumerate(stays(data, n_stays)):
        state = engine.new_state(static)
        rows = list(zip(events.code, events.time, events.value, strict=True))
        for i, (c, t, v) in enumerate(rows):
            obs = [Observation(c, t, v)]
            t0 = time.perf_counter_ns()
            engine.update(state, obs)
            stream.append(time.perf_counter_ns() - t0)
            if k < 10 and i % 10 == 0:  # the alternative: featurize + run the whole history
                ids = np.array([sid])
                t0 = time.perf_counter_ns()
                bundle.predict(
                    SimpleNamespace(events=events.iloc[: i + 1], static=data.static), ids
                )
                recompute.append(time.perf_counter_ns() - t0)
                feats = bundle.featurizer.transform(events.iloc[: i + 1], data.static, ids)
                t0 = time.perf_counter_ns()
                bundle.predict_arrays(feats)
                forward.append(time.perf_counter_ns() - t0)
    us = lambda x: np.asarray(x) / 1e3  # noqa: E731
    s, r, f = us(stream), us(recompute), us(forward)
    return {
        "updates": len(s), "p50_us": np.median(s), "p99_us": np.percentile(s, 99),
        "recompute_p50_us": np.median(r), "forward_p50_us": np.median(f),
        "ratio_recompute": np.median(r) / np.median(s),
        "ratio_forward": np.median(f) / np.median(s),
    }  # fmt: skip


# ---- HTTP -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    bundle: Path,
    db: Path,
    port: int,
    env: dict[str, str] | None = None,
    wait_s: float = 60,
    options: tuple[str, ...] = (),
) -> subprocess.Popen:
    """``medseq serve`` in a subprocess (``env`` added to ours, ``options`` appended to its
    command line), once ``/healthz`` answers."""
    cmd = [sys.executable, "-m", "medseq.cli", "serve", str(bundle), "--host", "127.0.0.1",
           "--port", str(port), "--state-db", str(db), *options]  # fmt: skip
    env = os.environ | {"MEDSEQ_SERVE_TOKENS": TOKEN} | (env or {})
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise TimeoutError("server did not start")


class Client:
    """One keep-alive connection; returns (status, json, seconds)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: bytes | None = None):
        t0 = time.perf_counter()
        self.conn.request(method, path, body=body, headers=self.headers)
        answer = self.conn.getresponse()
        data = answer.read()
        return answer.status, data, time.perf_counter() - t0


def plans(data, n_patients: int, per_obs: bool, start: int = 1000) -> dict:
    """Per patient: the static and the list of request bodies, in time order."""
    out = {}
    for sid, events, static in stays(data, n_patients, start):
        triples = zip(events.code, events.time, events.value, strict=True)
        rows = [{"time": float(t), "code": c, "value": float(v)} for c, t, v in triples]
        if per_obs:
            groups = [[r] for r in rows]
        else:  # one message per charting time, as a bedside system would send
            groups, last = [], None
            for r in rows:
                if r["time"] != last:
                    groups.append([])
                    last = r["time"]
                groups[-1].append(r)
        out[f"b{sid}"] = (static, groups)
    return out


def run_load(port, plan, cursors, n_threads, max_requests, max_seconds, stop=None) -> dict:
    """Replay ``plan`` from ``cursors`` with ``n_threads`` connections; bounded in count and time.

    ``cursors[pid]`` ends as the number of acknowledged (answered 200) requests of ``pid``.
    """
    lock, ids = threading.Lock(), list(plan)
    stats = {"requests": 0, "observations": 0, "latencies": [], "status": {}, "errors": 0}
    deadline = time.monotonic() + max_seconds

    def worker(mine: list[str]) -> None:
        client = Client(port)
        while mine:
            for pid in list(mine):
                static, groups = plan[pid]
                k = cursors[pid]
                with lock:
                    over = stats["requests"] >= max_requests or time.monotonic() > deadline
                if k >= len(groups) or over or (stop is not None and stop.is_set()):
                    mine.remove(pid)
                    continue
                body = {"observations": groups[k]} | ({"static": static} if k == 0 else {})
                try:
                    status, data, seconds = client.call(
                        "POST", f"/v1/patients/{pid}/observations", json.dumps(body).encode()
                    )
                except (OSError, http.client.HTTPException):
                    with lock:
                        stats["errors"] += 1
                    return
                with lock:
                    stats["requests"] += 1
                    stats["status"][status] = stats["status"].get(status, 0) + 1
                    stats["latencies"].append(seconds)
                    if status == 200:
                        cursors[pid] = k + 1
                        stats["observations"] += len(groups[k])
                    else:
                        stats.setdefault("first_error", data[:300].decode(errors="replace"))

    threads = [threading.Thread(target=worker, args=(ids[i::n_threads],)) for i in range(n_threads)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats["seconds"] = time.perf_counter() - t0
    return stats


def summarize(stats: dict) -> dict:
    lat = np.asarray(stats["latencies"]) * 1e3
    return {
        "requests": stats["requests"], "observations": stats["observations"],
        "seconds": stats["seconds"], "obs_per_s": stats["observations"] / stats["seconds"],
        "req_per_s": stats["requests"] / stats["seconds"], "p50_ms": np.median(lat),
        "p99_ms": np.percentile(lat, 99), "status": stats["status"],
        "first_error": stats.get("first_error"),
    }  # fmt: skip


def kill_and_restart(bundle_dir, bundle, data, workdir: Path, n_patients: int) -> dict:
    """Load, kill -9 mid-load, restart on the same file, check and finish every stay."""
    from medseq.serving.engine import Observation, StreamingEngine

    plan = plans(data, n_patients, per_obs=False, start=2000)
    cursors = dict.fromkeys(plan, 0)
    db, port = workdir / "kill.sqlite", free_port()
    server = start_server(bundle_dir, db, port)
    total = sum(len(g) for _, groups in plan.values() for g in groups)

    def acked_now() -> dict:
        return {pid: sum(len(g) for g in plan[pid][1][: cursors[pid]]) for pid in plan}

    def kill_half_way() -> None:  # mid-load by construction, not by a guessed delay
        deadline = time.monotonic() + 60
        while sum(acked_now().values()) < total // 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        server.send_signal(signal.SIGKILL)

    killer = threading.Thread(target=kill_half_way)
    killer.start()
    run_load(port, plan, cursors, 4, 10**6, 60)
    killer.join()
    server.wait(10)
    acked = acked_now()
    server = start_server(bundle_dir, db, port)
    client, lost, extra = Client(port), 0, 0
    for pid, (_, groups) in plan.items():
        status, body, _ = client.call("GET", f"/v1/patients/{pid}")
        stored = json.loads(body)["n_observations"] if status == 200 else 0
        lost += max(0, acked[pid] - stored)
        extra += max(0, stored - acked[pid])  # committed, but the answer never arrived
        cumulative = np.cumsum([0] + [len(g) for g in groups])
        cursors[pid] = int(np.searchsorted(cumulative, stored))  # resume where the server is
    run_load(port, plan, cursors, 4, 10**6, 120)
    client = Client(port)  # the one above sat idle past keep_alive_s and was closed
    engine, worst = StreamingEngine(bundle), 0.0
    for pid, (static, groups) in plan.items():
        state = engine.new_state(static)
        for group in groups:
            engine.update(state, [Observation(r["code"], r["time"], r["value"]) for r in group])
        _, body, _ = client.call("GET", f"/v1/patients/{pid}")
        worst = max(worst, abs(json.loads(body)["risk"] - state.risk))
    server.send_signal(signal.SIGTERM)
    server.wait(10)
    return {"acknowledged": sum(acked.values()), "lost": lost, "in_flight_committed": extra,
            "max_risk_diff": worst, "patients": len(plan), "total": total}  # fmt: skip


MALFORMED = [
    b"{not json", b"", b"[]", b'{"observations": "x"}', b'{"observations": [{"time": NaN, '
    b'"code": "HR", "value": 1}]}', b'{"observations": [{"time": 1, "code": "HR", "value": '
    b'Infinity}]}', b'{"observations": [{"time": 1, "code": "HR", "value": "80"}]}',
    b'{"observations": [{"time": 1, "code": "HR", "value": "abc"}]}',
    b'{"observations": [{"time": 1e12, "code": "HR", "value": 1}]}',
    b'{"observations": [{"time": -1, "code": "HR", "value": 1, "x": 1}]}',
    b'{"observations": [], "static": {"Age": "old"}}', b'{"static": {"ICUType": 9}}',
    b'{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": '
    b'{"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": '
    b'"http://loinc.org", "code": "8867-4"}]}, "effectiveDateTime": "2999-01-01T00:00:00Z", '
    b'"valueQuantity": {"value": 80}}}]}',
    b'{"resourceType": "Bundle", "entry": 5}', b'{"resourceType": "Observation"}',
    b'{"observations": [{"time": 1, "code": "HR", "value": 1e400}]}',
    b'\xff\xfe\x00garbage',
    b'{"observations": [' + b'{"time": 1, "code": "HR", "value": 1},' * 2000 + b"]}",
]  # fmt: skip


def malformed_suite(bundle_dir, workdir: Path) -> dict:
    port = free_port()
    server = start_server(bundle_dir, workdir / "malformed.sqlite", port)
    client, statuses = Client(port), {}
    paths = ["/v1/patients/m1/observations", "/v1/predict", "/v1/patients/bad%20id/observations"]
    for path in paths:
        for body in MALFORMED:
            status, _, _ = client.call("POST", path, body)
            statuses[status] = statuses.get(status, 0) + 1
    server.send_signal(signal.SIGTERM)
    server.wait(10)
    return {"requests": sum(statuses.values()), "status": statuses,
            "5xx": sum(n for s, n in statuses.items() if s >= 500)}  # fmt: skip


PARTS = ("step", "http", "kill", "malformed")


def server_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_run(
    bundle_dir,
    data,
    workdir: Path,
    name: str,
    per_obs: bool,
    cap: int,
    n_patients: int,
    src: str | None = None,
) -> dict:
    """One HTTP load run against a fresh server (``src``: another tree's ``src/`` to serve
    from); adds the server's CPU per request and the load average before and after."""
    port = free_port()
    env = {"PYTHONPATH": src} if src else None
    server = start_server(bundle_dir, workdir / f"{name}-{port}.sqlite", port, env=env)
    plan = plans(data, n_patients, per_obs)
    load0, cpu0 = os.getloadavg(), server_cpu_s(server.pid)
    stats = run_load(port, plan, dict.fromkeys(plan, 0), 8, cap, 60)
    cpu1, load1 = server_cpu_s(server.pid), os.getloadavg()
    server.send_signal(signal.SIGTERM)
    server.wait(10)
    out = summarize(stats)
    out["server_cpu_us"] = (cpu1 - cpu0) / max(out["requests"], 1) * 1e6
    out["load"] = f"{load0[0]:.2f} → {load1[0]:.2f}"
    return out


def compare_http(
    bundle_dir, data, workdir: Path, before: Path, rounds: int, n_patients: int
) -> str:
    """Single-observation HTTP load, ``before``'s server and this tree's alternating (A B B A
    ...), as a markdown table; the machine's load falls on both alike."""
    rows, order = [], []
    for r in range(rounds):
        order += [("before", str(before)), ("after", None)][:: 1 if r % 2 == 0 else -1]
    for label, src in order:
        out = http_run(bundle_dir, data, workdir, label, True, 8000, n_patients, src)
        rows.append((label, out))
        print(label, out, flush=True)
    lines = ["| server | updates/s | p50 | p99 | server CPU per request | statuses | 1-min load |",
             "|---|---:|---:|---:|---:|---|---|"]  # fmt: skip
    for label, o in rows:
        lines.append(f"| {label} | {o['req_per_s']:.0f} | {o['p50_ms']:.1f} ms | {o['p99_ms']:.1f} ms | "
                     f"{o['server_cpu_us']:.0f} µs | {o['status']} | {o['load']} |")  # fmt: skip
    for label in ("before", "after"):
        mine = [o for lab, o in rows if lab == label]
        lines.append(f"| median {label} | {np.median([o['req_per_s'] for o in mine]):.0f} | "
                     f"{np.median([o['p50_ms'] for o in mine]):.1f} ms | {np.median([o['p99_ms'] for o in mine]):.1f} ms | "
                     f"{np.median([o['server_cpu_us'] for o in mine]):.0f} µs | | |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="default: train a GRU-128 bundle first")
    parser.add_argument("--patients", type=int, default=64)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/serving.md")
    parser.add_argument("--only", help=f"comma list of {','.join(PARTS)}: run those, print "
                        "their figures and leave --output alone (default: all, and write it)")  # fmt: skip
    parser.add_argument("--before", type=Path, help="with http: also serve this tree's src/ "
                        "(e.g. main's), alternating with this tree, and print both")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2, help="with --before: runs per tree")
    args = parser.parse_args()
    parts = PARTS if args.only is None else tuple(p.strip() for p in args.only.split(","))
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"--only: unknown part(s) {unknown}; choose from {list(PARTS)}")
    started = time.perf_counter()
    import torch

    from medseq.bundle import load_bundle
    from medseq.paths import dataset_dir
    from medseq.sources import physionet2012

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        bundle_dir = args.bundle or train_bundle(workdir / "train")
        bundle = load_bundle(bundle_dir)
        data = physionet2012.read(dataset_dir("physionet2012") / "set-b.tar.gz")
        results: dict = {"patients": args.patients}
        if "step" in parts:
            results["in_process"] = in_process(bundle, data, 100)
            print("in process:", results["in_process"], flush=True)
        if "http" in parts:
            for name, per_obs, cap in (
                ("http_per_chart_time", False, 6000),
                ("http_per_obs", True, 8000),
            ):
                results[name] = http_run(bundle_dir, data, workdir, name, per_obs, cap,
                                         args.patients)  # fmt: skip
                print(name, results[name], flush=True)
            if args.before is not None:
                results["compare"] = compare_http(bundle_dir, data, workdir, args.before,
                                                  args.rounds, args.patients)  # fmt: skip
        if "kill" in parts:
            results["kill_restart"] = kill_and_restart(bundle_dir, bundle, data, workdir, 32)
            print("kill/restart:", results["kill_restart"], flush=True)
        if "malformed" in parts:
            results["malformed"] = malformed_suite(bundle_dir, workdir)
            print("malformed:", results["malformed"], flush=True)
    if args.only is None:
        args.output.write_text(keep_other_sections(report(results), args.output))
        print(f"wrote {args.output}")
    else:
        print(partial_report(results))
    print(f"wall {time.perf_counter() - started:.0f} s, CPU of this process "
          f"{time.process_time():.0f} s, load average {os.getloadavg()}")  # fmt: skip


def partial_report(r: dict) -> str:
    """The markdown rows of the parts that ran (``--only``)."""
    out = []
    if "in_process" in r:
        p = r["in_process"]
        out.append(
            f"| one streaming update, in process | {p['updates']} updates | p50 {p['p50_us']:.0f} µs | p99 {p['p99_us']:.0f} µs |"
        )
    for name, label in (
        ("http_per_chart_time", "one charting time"),
        ("http_per_obs", "one observation"),
    ):
        if name in r:
            o = r[name]
            out.append(
                f"| HTTP, requests carry {label} | {o['requests']} requests | {o['req_per_s']:.0f} req/s, {o['obs_per_s']:.0f} obs/s | p50 {o['p50_ms']:.1f} ms | p99 {o['p99_ms']:.1f} ms | {o['status']} | server CPU {o['server_cpu_us']:.0f} µs/request | load {o['load']} |"
            )
    if "compare" in r:
        out.append("\n" + r["compare"])
    if "kill_restart" in r:
        k = r["kill_restart"]
        out.append(
            f"| kill -9 under load | {k['acknowledged']} acknowledged | **{k['lost']} lost** | {k['in_flight_committed']} committed unanswered | max risk diff {k['max_risk_diff']:.1e} |"
        )
    if "malformed" in r:
        m = r["malformed"]
        out.append(
            f"| malformed-input suite | {m['requests']} requests | {m['status']} | **{m['5xx']} answers 5xx** |"
        )
    return "\n".join(out)


def keep_other_sections(new: str, path: Path) -> str:
    """``new`` followed by the sections of ``path`` that other benchmarks wrote.

    serving.md is shared (the streaming-step and hardening benchmarks append their own
    sections); rewriting the whole file would silently drop their measured figures.
    """
    if not path.exists():
        return new
    own = {line for line in new.splitlines() if line.startswith("## ")}
    kept, keep = [], False
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            keep = line not in own
        if keep:
            kept.append(line)
    return new.rstrip("\n") + ("\n\n" + "\n".join(kept) + "\n" if kept else "\n")


def report(r: dict) -> str:
    p, a, b = r["in_process"], r["http_per_chart_time"], r["http_per_obs"]
    k, m = r["kill_restart"], r["malformed"]
    return f"""# Serving benchmark

`python benchmarks/bench_serving.py` (PhysioNet 2012 set B stays replayed in time order;
GRU, 128 hidden units, mean pooling, summary fusion, trained for the run on 1000 set-A
stays; server: `medseq serve` = uvicorn, one worker, 127.0.0.1, SQLite WAL
`synchronous=NORMAL`; load client: 8 keep-alive connections from the same 2-core machine).

## One streaming update, in process

| updates | p50 | p99 | recompute history (featurize + model) p50 | model forward only p50 |
|---:|---:|---:|---:|---:|
| {p["updates"]} | {p["p50_us"]:.0f} µs | {p["p99_us"]:.0f} µs | {p["recompute_p50_us"]:.0f} µs ({p["ratio_recompute"]:.0f}×) | {p["forward_p50_us"]:.0f} µs ({p["ratio_forward"]:.1f}×) |

## HTTP, {r["patients"]} simulated patients

| requests carry | requests | observations | req/s | observations/s | p50 | p99 | statuses |
|---|---:|---:|---:|---:|---:|---:|---|
| one charting time | {a["requests"]} | {a["observations"]} | {a["req_per_s"]:.0f} | {a["obs_per_s"]:.0f} | {a["p50_ms"]:.1f} ms | {a["p99_ms"]:.1f} ms | {a["status"]} |
| one observation | {b["requests"]} | {b["observations"]} | {b["req_per_s"]:.0f} | {b["obs_per_s"]:.0f} | {b["p50_ms"]:.1f} ms | {b["p99_ms"]:.1f} ms | {b["status"]} |

## kill -9 under load, restart on the same state file

{k["patients"]} patients, {k["total"]} observations; the server was killed once half of them
were acknowledged ({k["acknowledged"]} acknowledged before the kill);
**{k["lost"]} lost**; {k["in_flight_committed"]} committed by requests whose answer was cut
by the kill (the client resumes from `n_observations` of `GET /v1/patients/{{id}}`); after
finishing every stay, largest difference to an uninterrupted in-process run:
{k["max_risk_diff"]:.1e}.

## Malformed-input suite against the live server

{m["requests"]} requests, statuses {m["status"]}: **{m["5xx"]} answers 5xx**.
"""


if __name__ == "__main__":
    main()
