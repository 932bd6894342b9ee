# ruff: noqa: E501  (the markdown tables of the report are long lines)
"""One streaming update in process, this tree's code against another tree's, interleaved.

``bench_serving.py``'s first figure on its own, made comparable across code versions: the
same GRU-128 bundle (mean pooling, summary fusion, trained briefly on 1000 set-A stays,
cached in ``benchmarks/.cache/stream_gru128``) replays real PhysioNet 2012 set-B stays one
observation per ``StreamingEngine.update`` call, timing each call. Each code version runs
in its own process (``PYTHONPATH`` = its ``src``), the versions alternate round by round
(A B B A ...), so the load of other jobs on a shared machine falls on both alike. Each
round keeps its p50 and p99; the report gives the median over rounds, the load average, and
the largest difference between the two versions' risks (they must be equal).

    python benchmarks/bench_streaming_step.py [--before OTHER/src] [--rounds 6] [--stays 100]
    python benchmarks/bench_streaming_step.py --profile   # cProfile of this tree's update
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"
BUNDLE = CACHE / "stream_gru128"
STREAM = CACHE / "stream_setb.json"


def prepare(n_stays: int) -> None:
    """Train the bundle (once) and write the observation stream of ``n_stays`` set-B stays."""
    sys.path.insert(0, str(HERE))
    from bench_serving import stays, train_bundle

    from medseq.paths import dataset_dir
    from medseq.sources import physionet2012

    if not (BUNDLE / "medseq.json").is_file():
        import shutil

        built = train_bundle(CACHE / "stream_train")
        shutil.copytree(built, BUNDLE, dirs_exist_ok=True)
    have = json.loads(STREAM.read_text()) if STREAM.is_file() else []
    if len(have) < n_stays:
        data = physionet2012.read(dataset_dir("physionet2012") / "set-b.tar.gz")
        out = [{"static": static, "obs": [[str(c), float(t), float(v)] for c, t, v in
                                          zip(events.code, events.time, events.value, strict=True)]}
               for _, events, static in stays(data, n_stays)]  # fmt: skip
        STREAM.write_text(json.dumps(out))


def replay(n_stays: int) -> dict:
    """Time every update of ``n_stays`` stays with the ``medseq`` on ``sys.path``."""
    import torch

    from medseq.bundle import load_bundle
    from medseq.serving.engine import Observation, StreamingEngine

    torch.set_num_threads(1)
    engine = StreamingEngine(load_bundle(BUNDLE))
    stream = json.loads(STREAM.read_text())[:n_stays]
    times, risks = [], []
    for stay in stream:
        state = engine.new_state(stay["static"])
        for c, t, v in stay["obs"]:
            obs = [Observation(c, t, v)]
            t0 = time.perf_counter_ns()
            engine.update(state, obs)
            times.append(time.perf_counter_ns() - t0)
            risks.append(state.risk)
    us = np.asarray(times) / 1e3
    return {"updates": len(us), "p50_us": float(np.median(us)), "p99_us": float(np.percentile(us, 99)),
            "risks": risks}  # fmt: skip


def run_worker(src: Path, n_stays: int) -> dict:
    env = os.environ | {"PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--worker", "--stays", str(n_stays)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"worker on {src} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(before: Path, after: Path, rounds: int, n_stays: int) -> dict:
    """Alternate the two trees round by round; per-version lists of (p50, p99), risk diff."""
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    loads = [os.getloadavg()]
    for r in range(rounds):
        order = [("before", before), ("after", after)]
        for name, src in order if r % 2 == 0 else order[::-1]:
            got = run_worker(src, n_stays)
            runs[name].append(got)
            print(f"round {r + 1}/{rounds} {name}: p50 {got['p50_us']:.1f} µs, p99 {got['p99_us']:.1f} µs, "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
        loads.append(os.getloadavg())
    a, b = (np.asarray(runs[k][0]["risks"]) for k in ("before", "after"))
    return {"runs": runs, "loads": loads, "max_risk_diff": float(np.max(np.abs(a - b))),
            "updates": runs["after"][0]["updates"]}  # fmt: skip


def report(result: dict, args: argparse.Namespace, command: str) -> str:
    med = {k: {q: statistics.median(r[q] for r in v) for q in ("p50_us", "p99_us")}
           for k, v in result["runs"].items()}  # fmt: skip
    loads = ", ".join(f"{x[0]:.2f}" for x in result["loads"])
    rows = [f"| {k} | {med[k]['p50_us']:.1f} µs | {med[k]['p99_us']:.1f} µs | "
            + ", ".join(f"{r['p50_us']:.1f}" for r in result["runs"][k]) + " |"
            for k in ("before", "after")]  # fmt: skip
    return "\n".join([
        "## Streaming step",
        "",
        f"`{command}`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. One `StreamingEngine.update` "
        f"per real set-B observation ({result['updates']} updates over {args.stays} stays), GRU 128, "
        "mean pooling, summary fusion; 'before' = `main`'s code, 'after' = this change, each "
        f"in its own process, {args.rounds} rounds alternating (A B B A ...). Figures: median "
        "over rounds of each round's p50 / p99. **Shared 2-core machine**: 1-min load average "
        f"before and after each round: {loads}.",
        "",
        "| code | p50 | p99 | p50 of each round (µs) |",
        "| --- | ---: | ---: | --- |",
        *rows,
        "",
        f"Largest difference between the two versions' risks over all {result['updates']} "
        f"updates: {result['max_risk_diff']:.1e}.",
        "",
    ])  # fmt: skip


def profile(n_stays: int, out: Path | None) -> None:
    """cProfile of the replay; prints the top functions by own time."""
    prof = cProfile.Profile()
    prof.enable()
    replay(n_stays)
    prof.disable()
    stats = pstats.Stats(prof).sort_stats("tottime")
    stats.print_stats(25)
    if out is not None:
        stats.dump_stats(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--before", type=Path, help="the other tree's src/ (e.g. main's)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--stays", type=int, default=100)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--out", type=Path, help="write the markdown section here")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(replay(args.stays)))
        return
    prepare(args.stays)
    if args.profile:
        profile(args.stays, None)
        return
    if args.before is None:
        parser.error("--before OTHER/src is needed to compare (or --profile)")
    result = compare(args.before, ROOT / "src", args.rounds, args.stays)
    text = report(
        result, args, "python benchmarks/bench_streaming_step.py " + " ".join(sys.argv[1:])
    )
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
