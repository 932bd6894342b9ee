"""Benchmark: the 513 Synthea FHIR R4 Bundles into the event table, medseq vs fhir.resources.

medseq's reader (:func:`medseq.sources.fhir_r4.read`: msgspec typed decoding of the fields
it uses, vectorised tables) reads all the Bundles, and once more with the generic JSON path
(orjson dicts) to show what the typed decoding buys. The peer validates each Bundle with
``fhir.resources`` model classes (the R4B models, as ``medseq serve`` does) and walks the
models for the same fields; it is slow, so it reads an evenly spaced subset of
``--peer-files`` Bundles and its time is scaled by size (seconds per MB x all MB); medseq
reads the same subset too, so the speed-up is also given like for like.

Each run is a fresh subprocess (peak RSS is its own; imports are not timed). Wall time
depends on what else runs on the shared machine, so CPU time (user + system of the
process) and the load average before and after each run are recorded beside it.

Usage: ``python benchmarks/bench_read_fhir.py [--data DIR] [--repeats 3] [--peer-files 20]``
(without ``--data`` the archive ``$MEDSEQ_DATA/synthea_r4/synthea_r4.tar.xz`` is unpacked
into a temporary folder first; that unpacking is timed separately).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "own_data.md"


def _bundles(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if "Information" not in p.name)


def _subset(folder: Path, n: int) -> list[Path]:
    files = _bundles(folder)
    step = max(len(files) // n, 1)
    return files[::step][:n]


def worker_medseq(files: list[Path] | Path, typed: bool = True) -> dict:
    from medseq.sources import _fhir_files, fhir_r4

    _fhir_files.USE_TYPED_DECODER = typed and _fhir_files.USE_TYPED_DECODER

    with tempfile.TemporaryDirectory(prefix="fhir_subset_") as tmp:
        folder = Path(tmp)
        if isinstance(files, list):  # a subset: link it into a folder of its own
            for f in files:
                (folder / f.name).symlink_to(f)
        else:
            folder = files
        cpu0, wall0 = time.process_time(), time.perf_counter()
        data = fhir_r4.read(folder, on_unit_mismatch="skip")
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "n_events": data.report.n_events,
        "n_subjects": data.report.n_subjects,
        "entries": data.resources["n_entries"].to_dict(),
    }


def _peer_events(bundle) -> list[tuple]:
    """The fields medseq reads, taken from the validated models."""
    rows: list[tuple] = []
    for entry in bundle.entry or ():
        res = entry.resource
        kind = res.get_resource_type()
        if kind == "Observation":
            when = res.effectiveDateTime or res.issued
            code = res.code.coding[0]
            if res.valueQuantity is not None:
                rows.append(
                    (res.subject.reference, when, code.system, code.code, res.valueQuantity.value)
                )
            for part in res.component or ():
                if part.valueQuantity is not None:
                    c = part.code.coding[0]
                    rows.append(
                        (res.subject.reference, when, c.system, c.code, part.valueQuantity.value)
                    )
        elif kind == "Encounter":
            rows.append(
                (res.subject.reference, res.period.start, "ENCOUNTER", res.class_fhir.code, None)
            )
        elif kind in ("Condition", "Procedure", "MedicationRequest", "Immunization"):
            concept = (
                res.vaccineCode
                if kind == "Immunization"
                else (res.medicationCodeableConcept if kind == "MedicationRequest" else res.code)
            )
            holder = res.patient if kind == "Immunization" else res.subject
            rows.append(
                (holder.reference, None, concept.coding[0].system, concept.coding[0].code, None)
            )
    return rows


def worker_peer(files: list[Path]) -> dict:
    import pandas as pd
    from fhir.resources.R4B.bundle import Bundle

    Bundle.model_validate_json(files[0].read_bytes())  # warm the lazily imported models
    cpu0, wall0 = time.process_time(), time.perf_counter()
    rows, entries = [], Counter()
    for f in files:
        bundle = Bundle.model_validate_json(f.read_bytes())
        entries.update(e.resource.get_resource_type() for e in bundle.entry or ())
        rows += _peer_events(bundle)
    frame = pd.DataFrame.from_records(rows, columns=["ref", "when", "system", "code", "value"])
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"wall_s": wall, "cpu_s": cpu, "n_events": len(frame), "entries": dict(entries)}


def _run(mode: str, target: str, n_files: int) -> dict:
    """One worker in a fresh interpreter; load average recorded around it."""
    before = os.getloadavg()[0]
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        mode,
        "--data",
        target,
        "--peer-files",
        str(n_files),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["load_before"], result["load_after"] = before, os.getloadavg()[0]
    return result


def _worker_main(mode: str, data: Path, n_files: int) -> None:
    if mode == "medseq":
        result = worker_medseq(data)
    elif mode == "medseq-generic":
        result = worker_medseq(data, typed=False)
    elif mode == "medseq-subset":
        result = worker_medseq(_subset(data, n_files))
    else:
        result = worker_peer(_subset(data, n_files))
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def _unpack(archive: Path, dest: Path) -> tuple[Path, float]:
    start = time.perf_counter()
    with tarfile.open(archive, "r:xz") as tar:
        tar.extractall(dest, filter="data")
    return dest / "synthea_r4", time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="unpacked synthea_r4 folder")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer-files", type=int, default=20)
    parser.add_argument("--worker", choices=["medseq", "medseq-generic", "medseq-subset", "peer"])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.worker:
        _worker_main(args.worker, args.data, args.peer_files)
        return
    unpack_s = None
    tmp = None
    if args.data is None:
        from medseq.paths import dataset_dir

        tmp = tempfile.TemporaryDirectory(prefix="synthea_")
        args.data, unpack_s = _unpack(
            dataset_dir("synthea_r4") / "synthea_r4.tar.xz", Path(tmp.name)
        )
    runs = [_run("medseq", str(args.data), args.peer_files) for _ in range(args.repeats)]
    generic = _run("medseq-generic", str(args.data), args.peer_files)
    subset = _run("medseq-subset", str(args.data), args.peer_files)
    peer = _run("peer", str(args.data), args.peer_files)
    report = _report(args, runs, generic, subset, peer, unpack_s)
    print(report)
    if not args.no_write:
        _write_section(report)


def _report(
    args, runs: list[dict], generic: dict, subset: dict, peer: dict, unpack_s: float | None
) -> str:
    from benchkit.machine import facts_markdown, machine_facts

    all_files = _bundles(args.data)
    all_mb = sum(p.stat().st_size for p in all_files) / 1e6
    sub_mb = sum(p.stat().st_size for p in _subset(args.data, args.peer_files)) / 1e6
    med = statistics.median(r["wall_s"] for r in runs)
    med_cpu = statistics.median(r["cpu_s"] for r in runs)
    check = "same" if subset["entries"] == peer["entries"] else "DIFFERENT"
    scaled_peer = peer["wall_s"] / sub_mb * all_mb
    lines = [
        "## FHIR R4: 513 Synthea Bundles into the event table",
        "",
        f"Command: `python benchmarks/bench_read_fhir.py --repeats {args.repeats} "
        f"--peer-files {args.peer_files}`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. "
        f"{len(all_files)} Bundles, {all_mb:.0f} MB of JSON; {runs[0]['n_events']:,} events, "
        f"{runs[0]['n_subjects']} subjects. Each run is a fresh process; imports not timed.",
        "",
        "| reader | files | wall (s) | CPU (s) | peak RSS (MiB) | load avg 1 min before / after |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for i, r in enumerate(runs):
        lines.append(
            f"| medseq `fhir_r4.read`, run {i + 1} | {len(all_files)} | {r['wall_s']:.1f} | "
            f"{r['cpu_s']:.1f} | {_tail(r)}"
        )
    lines.append(
        f"| medseq, generic JSON (orjson, no msgspec) | {len(all_files)} | "
        f"{generic['wall_s']:.1f} | {generic['cpu_s']:.1f} | {_tail(generic)}"
    )
    for name, r in (("medseq `fhir_r4.read`", subset), ("`fhir.resources` R4B models", peer)):
        lines.append(
            f"| {name}, subset | {args.peer_files} ({sub_mb:.0f} MB) | {r['wall_s']:.1f} | "
            f"{r['cpu_s']:.1f} | {_tail(r)}"
        )
    lines += [
        "",
        f"- medseq, all Bundles: median **{med:.1f} s wall, {med_cpu:.1f} s CPU** (target ≤ 15 s). "
        f"The process ran {med_cpu / med:.2f} CPU-seconds per wall second (1.00 = a whole core "
        "to itself): the machine's 2 cores were shared with the load average shown, so on an "
        "idle machine the wall time is close to the CPU time.",
        f"- Typed decoding (msgspec, the default) against the generic JSON path (orjson dicts): "
        f"{generic['cpu_s']:.1f} s → {med_cpu:.1f} s CPU.",
        f"- `fhir.resources`, scaled by size from the subset: ≈ {scaled_peer:.0f} s for all "
        f"{all_mb:.0f} MB; like for like on the subset medseq is "
        f"{peer['wall_s'] / subset['wall_s']:.0f}x faster in wall time, "
        f"{peer['cpu_s'] / subset['cpu_s']:.0f}x in CPU time.",
        f"- Check: entries per resource type on the subset, medseq vs `fhir.resources`: {check}.",
    ]
    if unpack_s is not None:
        lines.append(
            f"- Unpacking `synthea_r4.tar.xz` first (not in the times above): {unpack_s:.1f} s."
        )
    lines += [
        "",
        *facts_markdown(
            machine_facts(("numpy", "pandas", "msgspec", "orjson", "fhir.resources")), "### Machine"
        ),
    ]
    return "\n".join(lines) + "\n"


def _tail(run: dict) -> str:
    return f"{run['peak_rss_mib']:.0f} | {run['load_before']:.1f} / {run['load_after']:.1f} |"


def _write_section(section: str) -> None:
    """Replace this benchmark's section of own_data.md, keeping the others."""
    title = section.splitlines()[0]
    text = RESULTS.read_text() if RESULTS.exists() else "# Bring your own data: measured\n\n"
    if title in text:
        start = text.index(title)
        nxt = text.find("\n## ", start + 1)
        text = text[:start] + section + ("" if nxt < 0 else text[nxt + 1 :])
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
