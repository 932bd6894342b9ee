# ruff: noqa: E501  (the markdown table has long lines)
"""Single-observation ``StreamService.update`` in process, two code trees interleaved.

Why beside the HTTP benchmark: on the shared 2-core machine the HTTP throughput of one
tree swings 2x between runs, more than any change to the state cache could move it. In
process (no network, one thread) the same updates vary much less. Each run replays the
first ``--updates`` single observations of ``--patients`` real set-B stays in time order,
round robin over the patients, through ``StreamService.update`` with the SQLite store on
disk (a commit per update, as the route), in its own process with the tree's ``src`` first
on the path; runs alternate between the trees (A B B A ...). ``--warm`` sets
``warm_patients`` of both trees (before: the states that keep their step terms; after:
the live states, the others packed), so ``--warm 8`` makes most updates pack one state
and rehydrate another.

    python benchmarks/bench_service_update.py --before 9a1b9a7 --bundle DIR [--warm 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving_hardening import extract

ROOT = Path(__file__).resolve().parents[1]


def worker(args) -> None:
    """One run in this process (the tree is whatever ``medseq`` imports)."""
    import torch

    torch.set_num_threads(1)
    from medseq.bundle import load_bundle
    from medseq.serving.engine import AlertPolicy, Observation
    from medseq.serving.inputs import History
    from medseq.serving.service import StreamService
    from medseq.serving.store import StateStore
    from medseq.sources import physionet2012

    data = physionet2012.read(Path(os.environ["MEDSEQ_DATA"]) / "physionet2012" / "set-b.tar.gz")
    ids = data.static.index.to_numpy()[1000 : 1000 + args.patients]
    queues = []
    for sid in ids:
        e = data.events[data.events.subject_id == sid]
        queues.append([(f"p{sid}", Observation(c, float(t), float(v))) for c, t, v in zip(e.code, e.time, e.value, strict=True)])
    order = [q[k] for k in range(max(map(len, queues))) for q in queues if k < len(q)][: args.updates]
    with tempfile.TemporaryDirectory() as tmp:
        store = StateStore(Path(tmp) / "s.sqlite")
        service = StreamService(load_bundle(args.bundle), "v", store, AlertPolicy(0.5), warm_patients=args.warm)
        times = []
        for pid, obs in order:
            t0 = time.perf_counter()
            service.update(pid, History(pid, [obs], [0]))
            times.append(time.perf_counter() - t0)
    t = np.asarray(times) * 1e6
    print(json.dumps({"p50_us": float(np.median(t)), "mean_us": float(t.mean()), "n": len(t)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="main")
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--patients", type=int, default=64)
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--warm", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        trees = {f"before ({args.before})": extract(args.before, Path(tmp) / "before"), "after (this tree)": ROOT / "src"}
        runs: dict[str, list[dict]] = {name: [] for name in trees}
        names = list(trees)
        for r in range(args.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                cmd = [sys.executable, __file__, "--worker", "--bundle", args.bundle, "--patients", str(args.patients), "--updates", str(args.updates), "--warm", str(args.warm)]
                env = os.environ | {"PYTHONPATH": str(trees[name]), "OMP_NUM_THREADS": "1"}
                load = os.getloadavg()[0]
                out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
                runs[name].append(json.loads(out.strip().splitlines()[-1]) | {"load": (load, os.getloadavg()[0])})
                print(name, runs[name][-1], flush=True)
    print(f"\n`python benchmarks/bench_service_update.py {' '.join(sys.argv[1:])}` ({args.patients} set-B stays, {args.updates} single-observation updates per run, warm_patients {args.warm}; shared 2-core machine)\n")
    print("| code | p50 per update | mean | p50 of each run (µs) | 1-min load before → after each run |")
    print("|---|---:|---:|---|---|")
    for name, rs in runs.items():
        each = ", ".join(f"{r['p50_us']:.0f}" for r in rs)
        loads = ", ".join(f"{a:.1f}→{b:.1f}" for a, b in (r["load"] for r in rs))
        print(f"| {name} | {np.median([r['p50_us'] for r in rs]):.0f} µs | {np.median([r['mean_us'] for r in rs]):.0f} µs | {each} | {loads} |")


if __name__ == "__main__":
    main()
