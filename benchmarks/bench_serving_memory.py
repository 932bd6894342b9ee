# ruff: noqa: E501  (the markdown tables of the report are long lines)
"""Memory of the streaming service while many patients stream (real PhysioNet 2012 stays).

N patients (default 100,000) each send one update: the first charting hour of a real
set-B stay (the 4,000 stays cycled, each copy under its own patient id), through
``StreamService.update`` with the SQLite state store on disk, as ``POST
/v1/patients/{id}/observations`` calls it (``--asgi``: through the whole ASGI app in
process, authentication, JSON parsing and validation included). The resident set size
(VmRSS) is read every N/10 patients; the states beyond the cache (``--cache``, default
10,000, as ``max_cached_patients``) live only in SQLite.

    python benchmarks/bench_serving_memory.py                   # 100,000 patients, cache 10,000
    python benchmarks/bench_serving_memory.py --cache 0         # unbounded, as before the cache
    python benchmarks/bench_serving_memory.py --warm 0          # every cached state live, unpacked
    python benchmarks/bench_serving_memory.py --write           # also update benchmarks/results/serving.md

The model is ``bench_serving.train_bundle`` (GRU, 128 hidden units, trained for the run).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import TOKEN, train_bundle

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Memory: many streaming patients, bounded state cache"


def rss_mb() -> float:
    """Resident set size of this process (VmRSS), MiB, after a garbage collection and
    ``malloc_trim`` (so that heap freed earlier, e.g. by the data read at the start, does
    not hide or fake growth; the same for pyarrow's memory pool)."""
    gc.collect()
    with contextlib.suppress(OSError):  # not glibc: RSS as it is
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    if "pyarrow" in sys.modules:  # pandas' arrow strings: a pool of its own, freed lazily
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def first_hours(data) -> list[tuple[list[tuple[str, float, float]], dict[str, float]]]:
    """(observations of the first charting hour, static) of every stay of the set."""
    out = []
    grouped = data.events.groupby("subject_id", sort=False)
    for sid, events in grouped:
        hour = np.floor(events.time.to_numpy())
        part = events[hour == hour.min()]
        rows = list(zip(part.code, part.time.astype(float), part.value.astype(float), strict=True))
        static = {k: float(v) for k, v in data.static.loc[sid].items() if v == v}
        out.append((rows, static))
    return out


def run(args) -> dict:
    import torch

    torch.set_num_threads(1)
    from medseq.bundle import load_bundle
    from medseq.serving.engine import AlertPolicy, Observation
    from medseq.serving.inputs import History
    from medseq.serving.service import StreamService
    from medseq.serving.store import StateStore
    from medseq.sources import physionet2012

    tmp = Path(tempfile.mkdtemp(prefix="medseq-mem-"))
    bundle_dir = Path(args.bundle) if args.bundle else train_bundle(tmp / "bundle")
    data = physionet2012.read(
        Path(os.environ.get("MEDSEQ_DATA", ROOT.parent / "shared" / "data"))
        / "physionet2012"
        / "set-b.tar.gz"
    )
    plans = first_hours(data)
    del data
    cache = args.cache if args.cache > 0 else 10**9
    warm_live = args.warm if args.warm > 0 else 10**9  # cached states kept live (unpacked)
    service = None
    db = tmp / "state.sqlite"
    if args.asgi:
        import warnings

        from medseq.serving.api import create_app
        from medseq.serving.settings import ServeSettings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from fastapi.testclient import TestClient
        settings = ServeSettings(tokens=(TOKEN,), state_db=str(db), max_cached_patients=cache,
                                 warm_patients=warm_live)  # fmt: skip
        client = TestClient(create_app(bundle_dir, settings)).__enter__()
        headers = {"Authorization": f"Bearer {TOKEN}"}

        def send(pid: str, rows, static) -> None:
            body = {
                "observations": [{"time": t, "code": c, "value": v} for c, t, v in rows],
                "static": static,
            }
            answer = client.post(f"/v1/patients/{pid}/observations", json=body, headers=headers)
            if answer.status_code != 200:
                raise RuntimeError(f"{answer.status_code}: {answer.text[:300]}")
    else:
        bundle = load_bundle(bundle_dir)
        service = StreamService(
            bundle, "bench", StateStore(db), AlertPolicy(0.5), max_cached_patients=cache,
            warm_patients=warm_live,
        )  # fmt: skip

        def send(pid: str, rows, static) -> None:
            obs = [Observation(c, t, v) for c, t, v in rows]
            service.update(pid, History(pid, obs, list(range(len(obs))), dict(static)))

    load_start = os.getloadavg()
    warm = 200
    for k in range(warm):
        rows, static = plans[k % len(plans)]
        send(f"warm{k}", rows, static)
    gc.collect()
    points = [(0, rss_mb())]
    start = time.perf_counter()
    step = max(args.patients // 10, 1)
    for k in range(args.patients):
        rows, static = plans[k % len(plans)]
        send(f"p{k}", rows, static)
        if (k + 1) % step == 0:
            gc.collect()
            points.append((k + 1, rss_mb()))
            print(
                f"{k + 1:>7} patients  RSS {points[-1][1]:7.1f} MiB  {time.perf_counter() - start:6.0f} s",
                flush=True,
            )
    seconds = time.perf_counter() - start
    db_mb = (
        sum(os.path.getsize(f"{db}{s}") for s in ("", "-wal") if os.path.exists(f"{db}{s}")) / 2**20
    )
    packed = None
    if service is not None:  # the cache's composition at the end
        n_packed = service._cache.n_packed
        packed = (len(service._cache) - n_packed, n_packed,
                  service._cache.packed_bytes() / max(n_packed, 1))  # fmt: skip
    return {"points": points, "seconds": seconds, "db_mb": db_mb, "cache": args.cache,
            "patients": args.patients, "asgi": args.asgi, "load": os.getloadavg(),
            "load_start": load_start, "packed": packed}  # fmt: skip


def report(result: dict, command: str) -> str:
    points = result["points"]
    base = points[0][1]
    full_at = (
        min((n for n, _ in points if n >= result["cache"]), default=None)
        if result["cache"]
        else None
    )
    cache = f"{result['cache']:,}" if result["cache"] else "unbounded"
    start_load = "/".join(f"{x:.1f}" for x in result["load_start"])
    end_load = "/".join(f"{x:.1f}" for x in result["load"])
    lines = [
        f"`{command}` (cache {cache}; {'ASGI app in process' if result['asgi'] else 'StreamService.update, as the route calls it'}; "
        f"SQLite on disk; one update per patient, the first charting hour of a real set-B stay; "
        f"{result['patients']:,} patients in {result['seconds']:.0f} s, load average (1/5/15 min) "
        f"{start_load} at the start, {end_load} at the end, on 2 shared cores: timings are not a speed figure)",
        "",
        "| patients | RSS MiB | growth since start |",
        "|---:|---:|---:|",
    ]
    lines += [f"| {n:,} | {r:.1f} | {r - base:+.1f} |" for n, r in points]
    growth = points[-1][1] - base
    lines.append("")
    lines.append(f"Growth over {result['patients']:,} patients: **{growth:+.1f} MiB**"
                 + (f" ({points[-1][1] - dict(points)[full_at]:+.1f} MiB after the cache filled at {full_at:,})" if full_at else "")
                 + f"; state database {result['db_mb']:.0f} MiB.")  # fmt: skip
    if result["packed"] is not None:
        live, packed, per = result["packed"]
        lines.append(
            f"Cache at the end: {live:,} live states, {packed:,} packed ({per:,.0f} bytes per blob on average)."
        )
    return "\n".join(lines)


def write_section(subtitle: str, text: str) -> None:
    """Put ``text`` under ``### subtitle`` in the memory section of serving.md (replacing
    an earlier run of the same configuration; the other sections are left as they are)."""
    path = ROOT / "benchmarks" / "results" / "serving.md"
    old = path.read_text()
    if SECTION not in old:
        old = old.rstrip("\n") + f"\n\n{SECTION}\n"
    head, rest = old.split(SECTION, 1)
    end = rest.find("\n## ")
    body, tail = (rest[:end], rest[end:]) if end >= 0 else (rest, "")
    blocks = {}
    intro = body.split("\n### ")[0].strip()  # a written summary above the runs is kept
    for chunk in body.split("\n### ")[1:]:
        title, _, content = chunk.partition("\n")
        blocks[title.strip()] = content.strip()
    blocks[subtitle] = text.strip()
    body = ("\n\n" + intro + "\n" if intro else "\n") + "".join(
        f"\n### {t}\n\n{c}\n" for t, c in blocks.items()
    )
    path.write_text(head + SECTION + body + tail)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument(
        "--cache", type=int, default=10_000, help="max_cached_patients; 0: unbounded"
    )
    parser.add_argument(
        "--warm", type=int, default=1_000, help="warm_patients: cached states kept live; 0: all"
    )
    parser.add_argument("--asgi", action="store_true", help="through the ASGI app (slower)")
    parser.add_argument("--bundle", help="a bundle directory (default: train bench_serving's GRU)")
    parser.add_argument("--write", action="store_true", help="update benchmarks/results/serving.md")
    args = parser.parse_args()
    result = run(args)
    text = report(result, "python benchmarks/bench_serving_memory.py " + " ".join(sys.argv[1:]))
    print(text)
    if args.write:
        cache = f"cache {args.cache:,}" if args.cache > 0 else "unbounded (no cache limit)"
        live = "every state live" if args.warm <= 0 else f"{args.warm:,} live, the rest packed"
        write_section(
            f"{args.patients:,} patients, {cache}, {live}{', ASGI' if args.asgi else ''}", text
        )


if __name__ == "__main__":
    main()
