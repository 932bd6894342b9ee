# ruff: noqa: E501  (the markdown table of the report has long lines)
"""CPU per 1-s ECG chunk, part by part, this tree's code against another tree's, interleaved.

What one ``POST /v1/streams/{id}/samples`` of one second of a real MIT-BIH record (360
samples, JSON) costs the server, split into the parts the request goes through:

``detector``
    :meth:`StreamDetector.push` alone (the monitor's 1-s chunk: quality, filters, QRS,
    beat features, the beat GRU, episodes);
``parse``
    the body's bytes to a :class:`~medseq.serving.signal_service.Chunk` (JSON parsing and
    validation);
``service``
    parse + :meth:`SignalStreams.push` (fingerprint, detector, answer, the SQLite
    transaction, checkpoints);
``app``
    the whole ASGI app as uvicorn calls it (middleware, routing, the bearer token, the
    route, the JSON answer), driven in process without a socket: the server's CPU per
    chunk less uvicorn's HTTP parsing and the socket.

Each figure is process CPU time (``time.process_time``) per chunk over ``--streams``
streams of ``--seconds`` chunks each, streams interleaved as a server sees them. Each code
version runs in its own process (``PYTHONPATH`` = its ``src``), the versions alternate
round by round (A B B A ...) so the load of other jobs falls on both alike; the report
gives each round's figures, the median, and the load average around each round. Both
versions' answers are compared: every beat, alert and acknowledgement field exactly, but
floats to their largest difference (the beat GRU of this tree sums in another order).

    python benchmarks/bench_stream_chunk_cost.py runs/mitbih-beats/bundle \
        --before /tmp/main/src [--rounds 4] [--streams 20] [--seconds 30]
    python benchmarks/bench_stream_chunk_cost.py runs/mitbih-beats/bundle --profile app
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FS = 360
TOKEN = "bench-token-0123456789abcdef"
PARTS = ("detector", "parse", "service", "app")


def signals(n_streams: int, seconds: int) -> list[np.ndarray]:
    """The streams of ``bench_signal_serving.py`` (a real record each, from MIT-BIH)."""
    sys.path.insert(0, str(HERE))
    from bench_signal_serving import signals as real

    return real(n_streams, seconds)


def bodies(xs: list[np.ndarray], seconds: int) -> list[list[bytes]]:
    """Each stream's chunks as the JSON a device sends (4 decimals, as the load test)."""
    return [
        [json.dumps({"start": k * FS, "samples": x[k * FS : (k + 1) * FS].round(4).tolist()}).encode()
         for k in range(seconds)]
        for x in xs
    ]  # fmt: skip


#: Set by ``--profile``: enabled around the timed loops only (not the start-up).
PROFILER: cProfile.Profile | None = None


def _per_chunk(fn, n: int) -> float:
    if PROFILER is not None:
        PROFILER.enable()
    t = time.process_time()
    fn()
    ms = (time.process_time() - t) / n * 1e3
    if PROFILER is not None:
        PROFILER.disable()
    return ms


def detector_ms(bundle: Path, xs: list[np.ndarray], seconds: int) -> tuple[float, str]:
    from medseq.datasets import get_dataset

    make, _ = get_dataset("mitbih").signal_streaming.detector_factory(bundle)
    detectors = [make(float(FS)) for _ in xs]
    outs: list[Any] = []

    def run() -> None:
        for k in range(seconds):
            for x, d in zip(xs, detectors, strict=True):
                outs.append(d.push(np.ascontiguousarray(x[k * FS : (k + 1) * FS]), start=k * FS))

    ms = _per_chunk(run, seconds * len(xs))
    answers = [  # gathered after the timing: the client's work is not the server's
        [[[b.sample, b.label, list(b.probabilities), b.quality] for b in out.beats],
         [[a.kind, a.episode, a.start_s, a.reported_s, a.reason] for a in out.alerts]]
        for out in outs
    ]  # fmt: skip
    return ms, answers


def parse_ms(raw: list[list[bytes]], seconds: int) -> float:
    from medseq.serving.inputs import parse_json
    from medseq.serving.signal_inputs import parse_chunk

    parse_chunk(parse_json(raw[0][0]), None)  # imports done on first use: not per chunk

    def run() -> None:
        for k in range(seconds):
            for stream in raw:
                parse_chunk(parse_json(stream[k]), None)

    return _per_chunk(run, seconds * len(raw))


def service_ms(bundle: Path, raw: list[list[bytes]], seconds: int, db: Path) -> tuple[float, str]:
    from medseq.datasets import get_dataset
    from medseq.serving.inputs import parse_json
    from medseq.serving.signal_inputs import parse_chunk
    from medseq.serving.signal_service import SignalStreams
    from medseq.serving.signal_store import SignalStore

    make, classifier = get_dataset("mitbih").signal_streaming.detector_factory(bundle)
    service = SignalStreams(make, SignalStore(str(db)), "bench", fs_hz=(FS,), lead="MLII",
                            class_names=classifier.class_names)  # fmt: skip
    for i in range(len(raw)):
        service.open(f"s{i}", FS, None, None)
    acks: list[Any] = []

    def run() -> None:
        for k in range(seconds):
            for i, stream in enumerate(raw):
                acks.append(service.push(f"s{i}", parse_chunk(parse_json(stream[k]), None))[0])

    # (an acknowledgement object with its JSON text in this tree, a dict in earlier ones)

    ms = _per_chunk(run, seconds * len(raw))
    service.store.close()
    return ms, [getattr(a, "value", a) for a in acks]


def differences(a: Any, b: Any, path: str = "") -> tuple[list[str], float]:
    """(places where ``a`` and ``b`` differ other than in a float's value, the largest
    difference of two floats)."""
    if isinstance(a, float) and isinstance(b, float):
        return [], abs(a - b)
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a)} != {sorted(b)}"], 0.0
        pairs = [(a[k], b[k], f"{path}.{k}") for k in a]
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} != {len(b)} items"], 0.0
        pairs = [(x, y, f"{path}[{i}]") for i, (x, y) in enumerate(zip(a, b, strict=True))]
    else:
        return ([] if a == b and type(a) is type(b) else [f"{path}: {a!r} != {b!r}"]), 0.0
    found, largest = [], 0.0
    for x, y, where in pairs:
        f, d = differences(x, y, where)
        found += f
        largest = max(largest, d)
    return found, largest


async def _asgi(app: Any, method: str, path: str, body: bytes) -> tuple[int, bytes]:
    """One request through the ASGI app, as uvicorn hands it over."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5000),
        "headers": [(b"host", b"127.0.0.1:8000"), (b"authorization", f"Bearer {TOKEN}".encode()),
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip
    sent = False
    status, chunks = 0, []

    async def receive() -> dict:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


def app_ms(bundle: Path, raw: list[list[bytes]], seconds: int, db: Path) -> tuple[float, str]:
    from medseq.serving.api import create_app
    from medseq.serving.settings import ServeSettings

    app = create_app(bundle, ServeSettings(tokens=(TOKEN,), state_db=str(db)))
    answers: list[bytes] = []
    result: dict[str, float] = {}

    async def main() -> None:
        async with app.router.lifespan_context(app):
            for i in range(len(raw)):
                status, _ = await _asgi(app, "PUT", f"/v1/streams/s{i}", b'{"fs_hz": 360}')
                if status != 201:
                    raise RuntimeError(f"opening a stream answered {status}")
            if PROFILER is not None:
                PROFILER.enable()
            t = time.process_time()
            for k in range(seconds):
                for i, stream in enumerate(raw):
                    status, answer = await _asgi(
                        app, "POST", f"/v1/streams/s{i}/samples", stream[k]
                    )
                    if status != 200:
                        raise RuntimeError(f"a chunk answered {status}: {answer[:200]!r}")
                    answers.append(answer)
            result["ms"] = (time.process_time() - t) / (seconds * len(raw)) * 1e3
            if PROFILER is not None:
                PROFILER.disable()

    asyncio.run(main())
    return result["ms"], [json.loads(a) for a in answers]


def measure(bundle: Path, n_streams: int, seconds: int, dump: Path | None = None) -> dict[str, Any]:
    """All four parts with the ``medseq`` on ``sys.path`` (one round); the answers of the
    detector, the service and the app are written to ``dump`` (JSON)."""
    xs = signals(n_streams, seconds)
    raw = bodies(xs, seconds)
    out: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    answers: dict[str, Any] = {}
    out["detector"], answers["detector"] = detector_ms(bundle, xs, seconds)
    out["parse"] = parse_ms(raw, seconds)
    with tempfile.TemporaryDirectory() as tmp:
        out["service"], answers["service"] = service_ms(bundle, raw, seconds, Path(tmp) / "s.db")
        out["app"], answers["app"] = app_ms(bundle, raw, seconds, Path(tmp) / "a.db")
    out["load_after"] = os.getloadavg()[0]
    if dump is not None:
        dump.write_text(json.dumps(answers))
    return out


def run_worker(src: Path, bundle: Path, n_streams: int, seconds: int, dump: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # fmt: skip
    cmd = [sys.executable, __file__, str(bundle), "--worker",
           "--streams", str(n_streams), "--seconds", str(seconds), "--dump", str(dump)]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker on {src} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(args: argparse.Namespace) -> str:
    after = ROOT / "src"
    order = [("before", args.before), ("after", after)]
    rounds: dict[str, list[dict]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name, src in order if r % 2 == 0 else order[::-1]:
                dump = Path(tmp) / f"{name}{r}.json"
                got = run_worker(src, args.bundle, args.streams, args.seconds, dump)
                rounds[name].append(got)
                print(name, json.dumps(got), flush=True)
        a, b = (json.loads((Path(tmp) / f"{n}0.json").read_text()) for n in ("before", "after"))
    return report(rounds, args, differences(a, b))


def report(
    rounds: dict[str, list[dict]], args: argparse.Namespace, diff: tuple[list[str], float]
) -> str:
    lines = [
        f"`python benchmarks/bench_stream_chunk_cost.py {args.bundle} --before {args.before} "
        f"--rounds {args.rounds} --streams {args.streams} --seconds {args.seconds}` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {args.streams} streams x "
        f"{args.seconds} chunks per round; CPU ms per chunk, median over rounds, each round's "
        "figure after it)",
        "",
        "| code | detector | parse | service (parse + apply + commit) | app (ASGI, no socket) | 1-min load average per round |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, got in rounds.items():
        cells = []
        for part in PARTS:
            values = [g[part] for g in got]
            each = ", ".join(f"{v:.2f}" for v in values)
            cells.append(f"{statistics.median(values):.2f} ({each})")
        loads = ", ".join(f"{g['load_before']:.1f}→{g['load_after']:.1f}" for g in got)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {loads} |")
    found, largest = diff
    lines += [
        "",
        f"Answers (every beat, alert and acknowledgement of the detector, the service and the "
        f"app, first round): {'the same in both versions' if not found else found[:5]}, "
        f"floats to {largest:.1e} (largest difference).",
    ]
    return "\n".join(lines)


def profile(args: argparse.Namespace) -> None:
    xs = signals(args.streams, args.seconds)
    raw = bodies(xs, args.seconds)
    global PROFILER
    PROFILER = prof = cProfile.Profile()
    with tempfile.TemporaryDirectory() as tmp:
        if args.profile == "detector":
            detector_ms(args.bundle, xs, args.seconds)
        elif args.profile == "service":
            service_ms(args.bundle, raw, args.seconds, Path(tmp) / "s.db")
        else:
            app_ms(args.bundle, raw, args.seconds, Path(tmp) / "a.db")
    pstats.Stats(prof).sort_stats("tottime").print_stats(40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--before", type=Path, default=None, help="Another tree's src/.")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--profile", choices=["detector", "service", "app"], default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dump", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.bundle, args.streams, args.seconds, args.dump)))
    elif args.profile:
        profile(args)
    elif args.before is not None:
        print(compare(args))
    else:
        print(json.dumps(measure(args.bundle, args.streams, args.seconds), indent=1))


if __name__ == "__main__":
    main()
