"""Streaming ECG monitor: EC57-style accuracy streamed vs offline, and edge throughput.

Usage (from the repository root, with ``PYTHONPATH=src MEDSEQ_DATA=../shared/data``)::

    python benchmarks/bench_monitor.py qrs                       # QRS Se/+P on DS2
    python benchmarks/bench_monitor.py beats BUNDLE              # V, S Se/+P on DS2
    python benchmarks/bench_monitor.py speed BUNDLE              # x real time, RSS, start-up
    python benchmarks/bench_monitor.py af BUNDLE [--af-model M]  # AF episodes on MIT-BIH

Every figure is computed twice where it can be: *offline*, the whole record pushed at once,
and *streamed*, the record pushed in 1-s chunks; the two must be equal. Beats are matched
to the reference annotations within 150 ms (ANSI/AAMI EC57). The whole record is scored
(EC57 lets the first 5 minutes be a learning period; we do not use that allowance).
Timings go to stdout with the load average beside them: on a shared machine they vary.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

DS2 = (
    "100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210", "212",
    "213", "214", "219", "221", "222", "228", "231", "232", "233", "234",
)  # fmt: skip
TOLERANCE_S = 0.15


def _data() -> Path:
    from medseq.paths import dataset_dir

    return dataset_dir("mitdb_full")


def _reference(record: str) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """Reference beat positions, AAMI classes and rhythm changes ``(sample, aux)``."""
    import wfdb

    from medseq.features.signals.beats import AAMI_MAP

    warnings.filterwarnings("ignore")
    ann = wfdb.rdann(str(_data() / record), "atr")
    keep = [i for i, s in enumerate(ann.symbol) if s in AAMI_MAP]
    positions = np.asarray(ann.sample)[keep]
    classes = np.array([AAMI_MAP[ann.symbol[i]] for i in keep])
    rhythm = [
        (int(s), n.strip("\x00 "))
        for s, sym, n in zip(ann.sample, ann.symbol, ann.aux_note, strict=True)
        if sym == "+"
    ]
    return positions, classes, rhythm


def _match(detected: np.ndarray, reference: np.ndarray, tolerance: int) -> np.ndarray:
    """For each reference beat, the index of its matched detection or -1 (one-to-one,
    nearest first)."""
    out = np.full(len(reference), -1)
    if len(detected) == 0:
        return out
    idx = np.clip(np.searchsorted(detected, reference), 1, len(detected) - 1)
    left, right = detected[idx - 1], detected[idx]
    nearest = np.where(np.abs(left - reference) <= np.abs(right - reference), idx - 1, idx)
    used: set[int] = set()
    for i in np.argsort(np.abs(detected[nearest] - reference), kind="stable"):
        j = int(nearest[i])
        if abs(int(detected[j]) - int(reference[i])) <= tolerance and j not in used:
            out[i] = j
            used.add(j)
    return out


def _lead(record: str):
    """MLII, or the first lead where a record has none (102, 104), as the featurizer does."""
    from medseq.monitoring.records import RecordError, read_record

    try:
        return read_record(_data() / record, lead="MLII")
    except RecordError:
        return read_record(_data() / record)


def _load():
    return os.getloadavg()[0]


def qrs(_: argparse.Namespace) -> None:
    from medseq.monitoring.qrs import StreamingQRSDetector
    from medseq.monitoring.records import read_record

    totals = {"offline": [0, 0, 0], "streamed": [0, 0, 0]}
    print("| record | beats | Se | +P | streamed = offline |\n|---|---:|---:|---:|---|")
    started = time.perf_counter()
    for record in DS2:
        rec = read_record(_data() / record, lead="MLII")
        reference, _, _ = _reference(record)
        x, fs = rec.samples, rec.fs_hz
        offline = StreamingQRSDetector(fs).push(x)
        det = StreamingQRSDetector(fs)
        step = round(fs)
        streamed = np.concatenate([det.push(x[i : i + step]) for i in range(0, len(x), step)])
        same = np.array_equal(offline, streamed)
        for name, peaks in (("offline", offline), ("streamed", streamed)):
            matched = _match(peaks, reference, round(TOLERANCE_S * fs))
            tp = int((matched >= 0).sum())
            t = totals[name]
            t[0], t[1], t[2] = t[0] + tp, t[1] + len(reference), t[2] + len(peaks)
        tp = int((_match(streamed, reference, round(TOLERANCE_S * fs)) >= 0).sum())
        print(
            f"| {record} | {len(reference)} | {tp / len(reference):.4f} | "
            f"{tp / max(len(streamed), 1):.4f} | {same} |"
        )
    for name, (tp, n_ref, n_det) in totals.items():
        print(
            f"\n{name}: QRS Se {tp / n_ref:.4f}, +P {tp / n_det:.4f} "
            f"({tp} of {n_ref} reference beats, {n_det} detections)"
        )
    print(f"\n{time.perf_counter() - started:.1f} s, load average {_load():.2f}")


def _run(bundle: str, x: np.ndarray, fs: float, chunk: int, af_model: str | None = None):
    from medseq.monitoring.af_model import AFModel
    from medseq.monitoring.beat_model import BeatClassifier
    from medseq.monitoring.detector import StreamDetector

    model = AFModel.load(af_model) if af_model else None
    detector = StreamDetector(BeatClassifier.from_bundle(bundle), fs, af_model=model)
    beats, alerts = [], []
    for i in range(0, len(x), chunk):
        out = detector.push(x[i : i + chunk])
        beats += out.beats
        alerts += out.alerts
    return beats, alerts


def beats(args: argparse.Namespace) -> None:
    from medseq.monitoring.records import read_record

    classes = ("N", "S", "V", "F")
    confusion = {k: np.zeros((len(classes), len(classes) + 1), int) for k in ("off", "str")}
    equal, max_diff = True, 0.0
    started = time.perf_counter()
    for record in DS2:
        rec = read_record(_data() / record, lead="MLII")
        reference, truth, _ = _reference(record)
        keep = truth != "Q"
        reference, truth = reference[keep], truth[keep]
        runs = {
            "off": _run(args.bundle, rec.samples, rec.fs_hz, len(rec.samples))[0],
            "str": _run(args.bundle, rec.samples, rec.fs_hz, round(rec.fs_hz))[0],
        }
        a, b = runs["off"], runs["str"]
        equal &= [x.sample for x in a] == [x.sample for x in b]
        equal &= [x.label for x in a] == [x.label for x in b]
        if len(a) == len(b) and a:
            diff = np.abs(np.array([x.probabilities for x in a]) - [x.probabilities for x in b])
            max_diff = max(max_diff, float(diff.max()))
        for name, found in runs.items():
            positions = np.array([x.sample for x in found], dtype=np.int64)
            matched = _match(positions, reference, round(TOLERANCE_S * rec.fs_hz))
            for t, j in zip(truth, matched, strict=True):
                col = classes.index(found[j].label) if j >= 0 else len(classes)
                confusion[name][classes.index(t), col] += 1
        print(f"{record}: {len(a)} beats, streamed = offline so far: {equal}", flush=True)
    print(
        "\n| pass | V Se | V +P | S Se | S +P | N Se | N +P |\n|---|---:|---:|---:|---:|---:|---:|"
    )
    for name, m in confusion.items():
        cells = []
        for c in ("V", "S", "N"):
            k = classes.index(c)
            cells += [m[k, k] / m[k].sum(), m[k, k] / max(m[:, k].sum(), 1)]
        label = "offline (whole record at once)" if name == "off" else "streamed, 1-s chunks"
        print(f"| {label} | " + " | ".join(f"{v:.4f}" for v in cells) + " |")
    print(f"\nconfusion (streamed; rows reference {classes}, columns predicted + missed):")
    print(confusion["str"])
    print(f"labels and R peaks equal: {equal}; largest probability difference {max_diff:.2e}")
    print(f"{time.perf_counter() - started:.1f} s, load average {_load():.2f}")


def _edge_child(bundle: str, chunk_s: float) -> None:
    """Runs in a fresh process: start-up, then one hour of ECG streamed; no torch."""
    t0, c0 = time.perf_counter(), time.process_time()
    from medseq.monitoring.beat_model import BeatClassifier
    from medseq.monitoring.detector import StreamDetector
    from medseq.monitoring.records import read_record

    detector = StreamDetector(BeatClassifier.from_bundle(bundle), 360.0)
    startup, startup_cpu = time.perf_counter() - t0, time.process_time() - c0
    x = np.concatenate([read_record(_data() / r, lead="MLII").samples for r in ("100", "101")])
    step = round(chunk_s * 360)
    t1, c1 = time.perf_counter(), time.process_time()
    n_beats = 0
    for i in range(0, len(x), step):
        n_beats += len(detector.push(x[i : i + step]).beats)
    elapsed, cpu = time.perf_counter() - t1, time.process_time() - c1
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{len(x) / 360:.0f} {elapsed:.3f} {cpu:.3f} {startup:.3f} {startup_cpu:.3f} "
        f"{rss_mb:.0f} {n_beats} {'torch' in sys.modules}"
    )


def speed(args: argparse.Namespace) -> None:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    print(
        "| chunk | ECG (s) | wall (s) | CPU (s) | x real time (wall) | x real time (CPU) "
        "| start-up wall / CPU (s) | process to ready (s) | peak RSS (MB) | beats "
        "| torch loaded | load avg |\n|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|"
    )
    for chunk_s in args.chunks:
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, __file__, "_edge", args.bundle, str(chunk_s)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout.split()
        total = time.perf_counter() - t0
        seconds, wall, cpu, startup, startup_cpu, rss, n_beats, torch = out
        ecg, ready = float(seconds), total - float(wall)
        print(
            f"| {chunk_s:g} s | {ecg:.0f} | {float(wall):.2f} | {float(cpu):.2f} | "
            f"{ecg / float(wall):.0f} | {ecg / float(cpu):.0f} | "
            f"{float(startup):.2f} / {float(startup_cpu):.2f} | {ready:.2f} | {rss} | "
            f"{n_beats} | {torch} | {_load():.2f} |",
            flush=True,
        )


def af(args: argparse.Namespace) -> None:
    """AF episodes (RR-irregularity rule, or ``--af-model``: the CinC 2017 RR model) against
    the reference AFIB episodes of all 48 MIT-BIH records: episode Se/+P (any overlap),
    duration Se/+P, median onset delay."""
    from medseq.sources.wfdb_records import MITDB_RECORDS

    true_eps, found_eps, delays = [], [], []
    hits = det_hits = 0
    af_time = af_found_time = alert_time = alert_true_time = 0.0
    for record in MITDB_RECORDS:
        _, _, rhythm = _reference(record)
        rec = _lead(record)
        end_s = len(rec.samples) / rec.fs_hz
        episodes = []
        for k, (s, name) in enumerate(rhythm):
            stop = rhythm[k + 1][0] if k + 1 < len(rhythm) else len(rec.samples)
            if name == "(AFIB":
                episodes.append((s / rec.fs_hz, stop / rec.fs_hz))
        # the whole record in one push: the same alerts as 1-s chunks (tested), 4x faster
        _, alerts = _run(args.bundle, rec.samples, rec.fs_hz, len(rec.samples), args.af_model)
        found, start = [], None
        for a in alerts:
            if a.episode != "AF":
                continue
            if a.kind == "onset":
                start = (a.start_s, a.reported_s)
            elif start is not None:
                found.append(
                    (start[0], a.reported_s if a.kind == "suppressed" else a.start_s, start[1])
                )
                start = None
        if start is not None:
            found.append((start[0], end_s, start[1]))
        for lo, hi in episodes:
            af_time += hi - lo
            overlap = [f for f in found if f[0] < hi and f[1] > lo]
            af_found_time += sum(min(hi, f[1]) - max(lo, f[0]) for f in overlap)
            if overlap:
                hits += 1
                reported = min(f[2] for f in overlap)
                # an alert already open at the onset (a fragmented episode) has no delay to
                # measure: only alerts reported after the onset count towards the median
                if reported >= lo:
                    delays.append(reported - lo)
        for lo, hi, _ in found:
            alert_time += hi - lo
            alert_true_time += sum(max(0.0, min(hi, e[1]) - max(lo, e[0])) for e in episodes)
            det_hits += any(e[0] < hi and e[1] > lo for e in episodes)
        true_eps += episodes
        found_eps += found
        if episodes or found:
            print(f"{record}: {len(episodes)} AFIB episodes, {len(found)} AF alerts", flush=True)
    print(
        f"\nepisode Se {hits / max(len(true_eps), 1):.3f} ({hits}/{len(true_eps)}), "
        f"episode +P {det_hits / max(len(found_eps), 1):.3f} ({det_hits}/{len(found_eps)})"
    )
    print(
        f"duration Se {af_found_time / max(af_time, 1e-9):.3f}, "
        f"duration +P {alert_true_time / max(alert_time, 1e-9):.3f}"
    )
    median = np.median(delays) if delays else float("nan")
    print(
        f"median delay from episode onset to alert {median:.1f} s "
        f"(over {len(delays)} episodes whose alert came after their onset)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("qrs")
    sub.add_parser("beats").add_argument("bundle")
    p = sub.add_parser("af")
    p.add_argument("bundle")
    p.add_argument("--af-model", default=None, help="AF model JSON (train_af_rr.py); else the rule")
    p = sub.add_parser("speed")
    p.add_argument("bundle")
    p.add_argument("--chunks", type=float, nargs="+", default=[1.0, 10.0])
    if len(sys.argv) > 1 and sys.argv[1] == "_edge":
        _edge_child(sys.argv[2], float(sys.argv[3]))
        return
    args = parser.parse_args()
    {"qrs": qrs, "beats": beats, "speed": speed, "af": af}[args.command](args)


if __name__ == "__main__":
    main()
