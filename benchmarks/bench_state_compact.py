# ruff: noqa: E501  (the markdown table has long lines)
"""Bytes per cached streaming state, live and packed, on real PhysioNet 2012 stays.

For the first 300 set-B stays, the state after the first charting hour, after 24 hours
and after the whole stay (48 h) is built with the streaming engine, then measured:

* live: memory of a rehydrated live state (tracemalloc: numpy buffers and headers, the
  state objects, the descriptor dict), as the service holds its ``warm_patients``;
* packed: the length of its compressed blob (:func:`medseq.serving.compact.pack_state`),
  as the service holds every other cached state (plus a 33-byte ``bytes`` header);
* the time to pack and to rehydrate one (median of 5 passes over the 300; on a shared
  machine these are not speed figures, and the load average is printed).

    python benchmarks/bench_state_compact.py --bundle DIR
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import train_bundle

ROOT = Path(__file__).resolve().parents[1]


def states(engine, data, ids, hours: float) -> list:
    from medseq.serving.engine import Observation

    out = []
    events = data.events[data.events.subject_id.isin(ids)]
    for sid in ids:
        e = events[events.subject_id == sid]
        e = e[e.time < np.floor(e.time.min()) + hours]
        static = {k: float(v) for k, v in data.static.loc[sid].items() if v == v}
        state = engine.new_state(static)
        engine.update(state, [Observation(c, t, v) for c, t, v in zip(e.code, e.time, e.value, strict=True)])
        out.append(state)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="default: train bench_serving's GRU-128")
    parser.add_argument("--stays", type=int, default=300)
    args = parser.parse_args()
    import tempfile

    import torch

    torch.set_num_threads(1)
    from medseq.bundle import load_bundle
    from medseq.serving.compact import pack_state, unpack_state
    from medseq.serving.engine import StreamingEngine
    from medseq.sources import physionet2012

    bundle_dir = args.bundle or train_bundle(Path(tempfile.mkdtemp()) / "bundle")
    engine = StreamingEngine(load_bundle(bundle_dir))
    data = physionet2012.read(
        Path(os.environ.get("MEDSEQ_DATA", ROOT.parent / "shared" / "data"))
        / "physionet2012" / "set-b.tar.gz"
    )  # fmt: skip
    ids = data.static.index.to_numpy()[: args.stays]
    load_start = os.getloadavg()
    rows = []
    for label, hours in (("first charting hour", 1), ("first 24 h", 24), ("whole stay (48 h)", 48)):
        built = states(engine, data, ids, hours)
        pack_s, unpack_s = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            blobs = [pack_state(s, None) for s in built]
            t1 = time.perf_counter()
            [unpack_state(b) for b in blobs]
            pack_s.append((t1 - t0) / len(built))
            unpack_s.append((time.perf_counter() - t1) / len(built))
        tracemalloc.start()
        live = [unpack_state(b)[0] for b in blobs]
        per_live = tracemalloc.get_traced_memory()[0] / len(live)
        tracemalloc.stop()
        del live
        per_blob = float(np.mean([len(b) for b in blobs]))
        rows.append(f"| {label} | {per_live:,.0f} B | {per_blob:,.0f} B (+33 B header) | {per_live / (per_blob + 33):.1f}× | {np.median(pack_s) * 1e6:.0f} µs | {np.median(unpack_s) * 1e6:.0f} µs |")
    loads = " → ".join("/".join(f"{x:.1f}" for x in load) for load in (load_start, os.getloadavg()))
    print(f"`python benchmarks/bench_state_compact.py {' '.join(sys.argv[1:])}` ({len(ids)} set-B stays; load average (1/5/15 min) {loads} on 2 shared cores)\n")
    print("| state after | live (tracemalloc) | packed blob | ratio | pack | rehydrate |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
