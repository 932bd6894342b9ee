"""Benchmark: drift monitoring of the REST service on PhysioNet 2012, and what it costs.

A bundle trained on set A (its reference profile stored at training time) is served, in
process (``create_app`` + the ASGI test client), with requests of ``--per-request`` stays:

1. **no drift**: set B (4000 stays, the same population) in subject order over 20 tumbling
   windows of ``--window`` stays; the false-alarm rate is the share of windows whose flag is
   on at their end, and the flag is also read after every request;
2. **shift**: set B stays of one ICU type only (1 coronary care, 2 cardiac surgery
   recovery, 3 medical, 4 surgical), each in a fresh service: after how many stays the
   alarm rises and which features drift at the end of the first window;
3. **overhead**: ``POST /v1/predict`` of 1 and of 20 stays, drift on and off interleaved
   (p50 of each), and the time of the profiling call itself (``DriftWindow.observe``).

Usage: ``python benchmarks/bench_drift.py BUNDLE [--window 200] [--append]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

from medseq.drift import DriftSettings
from medseq.experiment.data import read_set
from medseq.serving.api import create_app
from medseq.serving.settings import ServeSettings

RESULTS = Path(__file__).parent / "results" / "uncertainty.md"
TOKEN = "bench-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ICU_TYPES = {1: "coronary care", 2: "cardiac surgery recovery", 3: "medical", 4: "surgical"}


def bodies(data) -> dict[int, dict]:
    """The ``/v1/predict`` JSON item of every stay of ``data``, by subject id."""
    events: dict[int, list[dict]] = {}
    for sid, group in data.events.groupby("subject_id", sort=False):
        rows = zip(group.time, group.code, group.value, strict=True)
        events[int(sid)] = [
            {"time": float(t), "code": str(c), "value": float(v)} for t, c, v in rows
        ]
    out = {}
    for sid in data.static.index:  # a stay without events is served too
        static = {k: float(v) for k, v in data.static.loc[sid].items() if v == v}
        item = {"patient_id": f"p{sid}", "static": static, "events": events.get(int(sid), [])}
        out[int(sid)] = item
    return out


def client(bundle: Path, settings: DriftSettings):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    return TestClient(create_app(bundle, ServeSettings(tokens=(TOKEN,), drift=settings)))


def post(c, items: list[dict]) -> float:
    start = time.perf_counter()
    answer = c.post("/v1/predict", json={"patients": items}, headers=AUTH)
    elapsed = time.perf_counter() - start
    if answer.status_code != 200:
        raise RuntimeError(f"/v1/predict answered {answer.status_code}: {answer.text[:300]}")
    return elapsed


def no_drift(bundle, items, ids, settings, per_request) -> dict:
    flags, windows = [], []
    with client(bundle, settings) as c:
        for start in range(0, len(ids), per_request):
            post(c, [items[s] for s in ids[start : start + per_request]])
            report = c.get("/v1/drift", headers=AUTH).json()
            flags.append(report["drift"])
            if (start + per_request) % settings.window == 0:
                windows.append((report["drift"], report["drifting_features"],
                                max(f["psi"] for f in report["features"])))  # fmt: skip
    return {"windows": windows, "flags": flags, "alarms": report["alarms"],
            "prediction_psi": report["predictions"][0]["psi"]}  # fmt: skip


def shifted(bundle, items, ids, settings, per_request) -> dict:
    first = None
    with client(bundle, settings) as c:
        for start in range(0, settings.window, per_request):
            post(c, [items[s] for s in ids[start : start + per_request]])
            report = c.get("/v1/drift", headers=AUTH).json()
            if report["drift"] and first is None:
                first = start + per_request
    features = {f["name"]: f for f in report["features"]}
    top = [(n, features[n]["psi"]) for n in report["drifting_features"]]
    return {"first_alarm_after": first, "n_drifting": len(top), "top": top,
            "prediction": report["predictions"][0]}  # fmt: skip


def overhead(bundle, items, ids, settings, repeats: int) -> dict:
    out = {}
    with client(bundle, settings) as c:
        monitor = c.app.state.drift
        observe_s: list[float] = []
        original = monitor.observe

        def timed(arrays, scores):
            start = time.perf_counter()
            original(arrays, scores)
            observe_s.append(time.perf_counter() - start)

        monitor.observe = timed
        for n in (1, 20):
            on, off, obs = [], [], []
            for k in range(repeats):
                chunk = [items[s] for s in ids[(k * n) % 3000 : (k * n) % 3000 + n]]
                c.app.state.drift = None
                off.append(post(c, chunk))
                c.app.state.drift = monitor
                observe_s.clear()
                on.append(post(c, chunk))
                obs.append(observe_s[0])
            out[n] = {"off": statistics.median(off), "on": statistics.median(on),
                      "observe": statistics.median(obs)}  # fmt: skip
    return out


def markdown(r: dict, command: str) -> str:
    s = r["settings"]
    lines = [
        "## Drift monitoring in the service (item 3)", "",
        f"Command: `{command}` (load average before / after: {r['load'][0]} / {r['load'][1]}; "
        f"{r['wall_s']:.0f} s). Bundle: `{r['bundle']}`; its reference profile was stored at "
        "training time from the set-A inputs and out-of-fold predictions. Window "
        f"{s.window} stays, alarm from {s.min_samples}, PSI >= {s.psi} and chi-square "
        f"p < {s.alpha} / tests (Bonferroni), requests of {r['per_request']} stays.", "",
        f"### Set B (same population) over {len(r['no_drift']['windows'])} windows", "",
        "| window | flag at its end | max PSI | drifting |", "|---:|---|---:|---|",
    ]  # fmt: skip
    for k, (flag, names, top) in enumerate(r["no_drift"]["windows"]):
        lines.append(f"| {k + 1} | {flag} | {top:.3f} | {', '.join(names) or '–'} |")
    nd = r["no_drift"]
    n_flag = sum(w[0] for w in nd["windows"])
    lines += [
        "", f"False-alarm rate: **{n_flag} / {len(nd['windows'])} windows**; flag on after "
        f"{sum(nd['flags'])} of {len(nd['flags'])} requests; alarms raised: {nd['alarms']}. "
        f"Prediction PSI at the end: {nd['prediction_psi']:.3f}.", "",
        "### One ICU type only (set B stays), each in a fresh service", "",
        "| ICU type | alarm after (stays) | features drifting after one window | largest PSI "
        "(first 8, ICUType one-hots included) | prediction PSI |", "|---|---:|---:|---|---:|",
    ]  # fmt: skip
    for t, sh in r["shifted"].items():
        top = ", ".join(f"{n} {p:.2f}" for n, p in sh["top"][:8])
        lines.append(
            f"| {t} {ICU_TYPES[t]} | {sh['first_alarm_after']} | {sh['n_drifting']} | {top} "
            f"| {sh['prediction']['psi']:.3f} |"
        )
    lines += ["", "### Per-request cost of profiling", "",
              "| stays per request | p50 drift off | p50 drift on | `observe` p50 | share |",
              "|---:|---:|---:|---:|---:|"]  # fmt: skip
    for n, o in r["overhead"].items():
        share = 100 * o["observe"] / o["off"]
        lines.append(
            f"| {n} | {1000 * o['off']:.1f} ms | {1000 * o['on']:.1f} ms "
            f"| {1e6 * o['observe']:.0f} µs | {share:.1f} % |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--per-request", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--append", action="store_true", help=f"append to {RESULTS}")
    args = parser.parse_args()
    load0, start = os.getloadavg()[0], time.perf_counter()
    settings = DriftSettings(window=args.window, min_samples=args.window // 2, check_every=10)
    data = read_set("physionet2012", "physionet2012/set-b.tar.gz")
    items = bodies(data)
    ids = [int(s) for s in data.static.index]
    icu = data.static.loc[ids, "ICUType"].to_numpy()
    r = {"bundle": str(args.bundle), "settings": settings, "per_request": args.per_request}
    r["no_drift"] = no_drift(args.bundle, items, ids, settings, args.per_request)
    r["shifted"] = {
        t: shifted(args.bundle, items, list(np.asarray(ids)[icu == t]), settings, args.per_request)
        for t in ICU_TYPES
    }
    r["overhead"] = overhead(args.bundle, items, ids, settings, args.repeats)
    r["load"] = (f"{load0:.2f}", f"{os.getloadavg()[0]:.2f}")
    r["wall_s"] = time.perf_counter() - start
    command = "python benchmarks/bench_drift.py " + " ".join(
        [
            str(args.bundle),
            f"--window {args.window}",
            f"--per-request {args.per_request}",
            f"--repeats {args.repeats}",
        ]
    )
    text = markdown(r, command)
    print(text)
    if args.append:
        with RESULTS.open("a") as handle:
            handle.write("\n" + text)


if __name__ == "__main__":
    main()
