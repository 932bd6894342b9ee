"""Scale: a synthetic MEDS dataset of 10 million events over 100,000 subjects, read + task +
count features shard by shard (:func:`medseq.sources.meds_scan.scan_task`).

Why: reading and featurising must stay linear in events and bounded in memory (issue 18,
target <= 2 GB peak RSS and >= 2 million events/s). The data is generated (never committed)
into a temporary folder as sharded MEDS parquet: per subject a birth, a sex, ~100 coded
events over two years from 2,000 codes with a Zipf-like frequency, an inpatient admission
for most and a death for some. The measurement runs in a fresh process so its peak RSS is
the scan's own (generation is not in it).

Usage::

    python benchmarks/bench_meds_scale.py --dir /tmp/meds_scale --subjects 100000 \
        --events-per-subject 100 --shards 20
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

N_CODES = 2000


def generate(root: Path, n_subjects: int, per_subject: int, n_shards: int, seed: int) -> int:
    """Write the shards; returns the number of events written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    names = np.array(
        ["MEDS_BIRTH", "GENDER/F", "GENDER/M", "ENCOUNTER/IMP", "MEDS_DEATH"]
        + [f"LAB//{i}" if i % 2 else f"DX//{i}" for i in range(N_CODES)]
    )
    weights = 1.0 / np.arange(1, N_CODES + 1)
    weights /= weights.sum()
    start = np.datetime64("2020-01-01T00:00:00", "us").astype(np.int64)
    total = 0
    for shard, ids in enumerate(np.array_split(np.arange(n_subjects, dtype=np.int64), n_shards)):
        n = len(ids)
        k = rng.poisson(per_subject - 4, size=n).clip(1)  # coded events besides the 4 below
        subject = np.repeat(ids, k)
        hours = rng.uniform(0, 2 * 8766, size=subject.size)
        code = 5 + rng.choice(N_CODES, size=subject.size, p=weights)
        admit = rng.random(n) < 0.7
        die = rng.random(n) < 0.1
        extra_subject = np.concatenate([ids, ids, ids[admit], ids[die]])
        extra_hours = np.concatenate(
            [
                np.full(n, -30 * 8766.0),
                np.full(n, -30 * 8766.0),
                rng.uniform(0, 8766, size=admit.sum()),
                rng.uniform(0, 2 * 8766, size=die.sum()),
            ]
        )
        extra_code = np.concatenate(
            [
                np.zeros(n, int),
                1 + (rng.random(n) < 0.5),
                np.full(admit.sum(), 3),
                np.full(die.sum(), 4),
            ]
        )
        subject = np.concatenate([subject, extra_subject])
        hours = np.concatenate([hours, extra_hours])
        code = np.concatenate([code, extra_code])
        order = np.lexsort((hours, subject))
        subject, hours, code = subject[order], hours[order], code[order]
        value = np.where(code % 2 == 0, rng.normal(size=code.size), np.nan).astype(np.float32)
        times = start + (hours * 3_600_000_000).astype(np.int64)
        codes = pa.DictionaryArray.from_arrays(pa.array(code, pa.int32()), pa.array(names))
        table = pa.table(
            {
                "subject_id": pa.array(subject),
                "time": pa.array(times.astype("datetime64[us]")),
                "code": codes.cast(pa.string()),
                "numeric_value": pa.array(value, mask=np.isnan(value)),
            }
        )
        pq.write_table(table, data / f"{shard:03d}.parquet")
        total += table.num_rows
    return total


def measure(root: Path) -> dict:
    """Read + task + count features of every shard; wall, CPU, peak RSS of this process."""
    from medseq.sources.meds_scan import scan_task

    wall, cpu = time.perf_counter(), time.process_time()
    result = scan_task(
        root,
        anchor=["ENCOUNTER/IMP"],
        offset_hours=24,
        label_codes=["MEDS_DEATH"],
        within_hours=8766,
        window_hours=8766,
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "events": result.n_events,
        "samples": len(result.subject_id),
        "positives": int(result.label.sum()),
        "excluded": result.excluded,
        "codes": len(result.codes),
        "nonzero_counts": int(result.counts.nnz),
        "input_events": int(result.counts.sum()),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "events_per_s_wall": round(result.n_events / wall),
        "events_per_s_cpu": round(result.n_events / cpu),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "load_avg": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/meds_scale"))
    parser.add_argument("--subjects", type=int, default=100_000)
    parser.add_argument("--events-per-subject", type=int, default=100)
    parser.add_argument("--shards", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure_only:
        print(json.dumps(measure(args.dir)))
        return
    if not (args.dir / "data").is_dir():
        t0 = time.perf_counter()
        n = generate(args.dir, args.subjects, args.events_per_subject, args.shards, args.seed)
        print(f"generated {n:,} events in {time.perf_counter() - t0:.1f} s under {args.dir}")
    for _ in range(args.repeats):
        before = os.getloadavg()
        out = subprocess.run(
            [sys.executable, __file__, "--dir", str(args.dir), "--measure-only"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        row = json.loads(out.strip().splitlines()[-1])
        row["load_avg_before"] = before
        print(json.dumps(row))


if __name__ == "__main__":
    main()
