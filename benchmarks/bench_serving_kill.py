# ruff: noqa: E501  (the markdown of the report has long lines)
"""kill -9 of the server three times under 16 concurrent clients: acknowledged observations lost.

Real set-B stays of PhysioNet 2012 are replayed in time order (one request per charting
time, as a bedside system sends them) by 16 client threads over keep-alive connections,
each request carrying an ``Idempotency-Key``. The server (``medseq serve``, uvicorn, SQLite
WAL ``synchronous=NORMAL``) is killed with SIGKILL three times, each once a further quarter
of the requests has been acknowledged, and restarted on the same state file. The server
runs with a small state cache (``--max-cached-patients``, ``--warm-patients``), so that
eviction, packing and rehydration of states all happen under the concurrent load.

After each restart every patient is read back (``GET /v1/patients/{id}``):

* lost: acknowledged observations missing from the stored state (the last acknowledged
  answer's ``n_observations`` against the stored one); the target is 0;
* in flight: updates committed whose answer the kill cut off (stored > acknowledged);
  the client re-sends its next request with the same key, which is then answered from the
  stored record and not applied twice.

At the end every stay is finished and its risk and ``n_observations`` are compared with
an uninterrupted in-process run of the same bundle (``StreamingEngine``).

    python benchmarks/bench_serving_kill.py --bundle DIR --write   # updates serving.md
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import Client, free_port, plans, start_server, train_bundle

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## kill -9 three times under 16 concurrent clients"


def offline(bundle, plan: dict) -> dict:
    """Per patient: ``n_observations`` after each request, and the final risk, of an
    uninterrupted in-process run."""
    from medseq.serving.engine import Observation, StreamingEngine

    engine, out = StreamingEngine(bundle), {}
    for pid, (static, groups) in plan.items():
        state, counts = engine.new_state(static), [0]
        for group in groups:
            engine.update(state, [Observation(r["code"], r["time"], r["value"]) for r in group])
            counts.append(state.n_observations)
        out[pid] = (counts, state.risk)
    return out


def load(port: int, plan: dict, acked: dict, n_threads: int, stop: threading.Event) -> dict:
    """Replay from ``acked[pid][0]`` until done or the server dies; ``acked[pid]`` ends as
    (requests acknowledged, ``n_observations`` of the last answer)."""
    lock, ids = threading.Lock(), list(plan)
    stats = {"requests": 0, "replayed": 0, "other": {}}

    def worker(mine: list[str]) -> None:
        client = Client(port)
        while mine and not stop.is_set():
            for pid in list(mine):
                static, groups = plan[pid]
                k = acked[pid][0]
                if k >= len(groups):
                    mine.remove(pid)
                    continue
                body = {"observations": groups[k]} | ({"static": static} if k == 0 else {})
                client.headers["Idempotency-Key"] = f"{pid}-{k}"
                try:
                    status, data, _ = client.call(
                        "POST", f"/v1/patients/{pid}/observations", json.dumps(body).encode()
                    )
                except (OSError, http.client.HTTPException):
                    return  # the server was killed
                with lock:
                    if status == 200:
                        acked[pid] = (k + 1, json.loads(data)["n_observations"])
                        stats["requests"] += 1
                    else:
                        stats["other"][status] = stats["other"].get(status, 0) + 1
                        mine.remove(pid)

    threads = [threading.Thread(target=worker, args=(ids[i::n_threads],)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return stats


def read_back(port: int, plan: dict, acked: dict, expected: dict) -> dict:
    """Lost and in-flight counts after a restart; resumes ``acked`` at the stored state."""
    client = Client(port)
    lost = in_flight = inconsistent = 0
    for pid in plan:
        status, body, _ = client.call("GET", f"/v1/patients/{pid}")
        stored = json.loads(body)["n_observations"] if status == 200 else 0
        k, n_acked = acked[pid]
        lost += max(0, n_acked - stored)
        counts = expected[pid][0]
        if stored == counts[k]:
            continue
        if k + 1 < len(counts) and stored == counts[k + 1]:
            in_flight += 1  # committed, answer cut off: re-sent with its key, not re-applied
        else:
            inconsistent += 1
    return {"lost": lost, "in_flight_committed": in_flight, "inconsistent": inconsistent}


def run(args) -> dict:
    from medseq.bundle import load_bundle
    from medseq.sources import physionet2012

    work = Path(tempfile.mkdtemp(prefix="medseq-kill-"))
    bundle_dir = Path(args.bundle) if args.bundle else train_bundle(work / "bundle")
    data = physionet2012.read(
        Path(os.environ.get("MEDSEQ_DATA", ROOT.parent / "shared" / "data"))
        / "physionet2012" / "set-b.tar.gz"
    )  # fmt: skip
    plan = plans(data, args.patients, per_obs=False, start=2000)
    expected = offline(load_bundle(bundle_dir), plan)
    n_requests = sum(len(groups) for _, groups in plan.values())
    acked = dict.fromkeys(plan, (0, 0))
    db, port = work / "kill.sqlite", free_port()
    options = ("--max-cached-patients", str(args.cache), "--warm-patients", str(args.warm))
    cycles = []
    for cycle in range(1, args.kills + 1):
        server = start_server(bundle_dir, db, port, wait_s=180, options=options)
        target = n_requests * cycle // (args.kills + 1)
        stop = threading.Event()

        def kill_at(target: int = target, server=server, stop=stop) -> None:
            while sum(a[0] for a in acked.values()) < target and not stop.is_set():
                time.sleep(0.002)
            server.send_signal(signal.SIGKILL)  # mid-load by construction

        killer = threading.Thread(target=kill_at)
        killer.start()
        stats = load(port, plan, acked, args.clients, stop)
        stop.set()
        killer.join()
        server.wait(30)
        before = sum(a[1] for a in acked.values())
        server = start_server(bundle_dir, db, port, wait_s=180, options=options)
        check = read_back(port, plan, acked, expected)
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        cycles.append({"cycle": cycle, "acknowledged_obs": before, "requests": stats["requests"],
                       "other_status": stats["other"], **check})  # fmt: skip
        print(cycles[-1], flush=True)
    server = start_server(bundle_dir, db, port, wait_s=180, options=options)
    stop = threading.Event()
    final = load(port, plan, acked, args.clients, stop)
    client, worst, wrong_n = Client(port), 0.0, 0
    for pid in plan:
        _, body, _ = client.call("GET", f"/v1/patients/{pid}")
        answer = json.loads(body)
        counts, risk = expected[pid]
        worst = max(worst, abs(answer["risk"] - risk))
        wrong_n += answer["n_observations"] != counts[-1]
    server.send_signal(signal.SIGTERM)
    server.wait(30)
    return {"cycles": cycles, "patients": len(plan), "requests": n_requests,
            "observations": sum(c[-1] for c, _ in expected.values()),
            "final_other_status": final["other"], "max_risk_diff": worst, "wrong_n": wrong_n,
            "load": os.getloadavg()}  # fmt: skip


def report(r: dict, args, command: str, load_start: tuple[float, ...]) -> str:
    rows = "\n".join(
        f"| {c['cycle']} | {c['acknowledged_obs']} | **{c['lost']}** | {c['in_flight_committed']} | {c['inconsistent']} | {c['other_status'] or '-'} |"
        for c in r["cycles"]
    )
    total_lost = sum(c["lost"] for c in r["cycles"])
    n = len(r["cycles"])
    at = ", ".join(f"{k}/{n + 1}" for k in range(1, n + 1))
    loads = " → ".join("/".join(f"{x:.1f}" for x in load) for load in (load_start, r["load"]))
    return f"""{SECTION}

`{command}` ({r['patients']} real set-B stays, {r['requests']} requests of one charting time
each, {r['observations']} observations, {args.clients} client threads with keep-alive
connections and an `Idempotency-Key` per request; server `medseq serve` with
`--max-cached-patients {args.cache} --warm-patients {args.warm}`, so that states are evicted,
packed and rehydrated under the load; killed with SIGKILL at {at} of the requests
acknowledged, restarted on the same SQLite file each time; load average
(1/5/15 min) {loads}).

| kill | observations acknowledged before it (cumulative) | lost | committed but unanswered (re-sent with their key, not re-applied) | stored state matching neither | other answers |
|---:|---:|---:|---:|---:|---|
{rows}

**{total_lost} acknowledged observations lost over {len(r['cycles'])} kill -9 cycles.** After the
last restart every stay was finished: {r['wrong_n']} stays with another `n_observations` than an
uninterrupted in-process run, largest risk difference {r['max_risk_diff']:.1e}; other answers
in the final run: {r['final_other_status'] or 'none'}.
"""


def write(text: str, path: Path) -> None:
    """Replace this benchmark's section of serving.md (or append it)."""
    old = path.read_text()
    if SECTION in old:
        head, rest = old.split(SECTION, 1)
        end = rest.find("\n## ")
        old = head.rstrip("\n") + "\n\n" + (rest[end + 1 :] if end >= 0 else "")
        path.write_text(old.rstrip("\n") + "\n\n" + text)
    else:
        path.write_text(old.rstrip("\n") + "\n\n" + text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="default: train bench_serving's GRU-128")
    parser.add_argument("--patients", type=int, default=64)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--cache", type=int, default=32, help="--max-cached-patients")
    parser.add_argument("--warm", type=int, default=8, help="--warm-patients")
    parser.add_argument("--write", action="store_true", help="update benchmarks/results/serving.md")
    args = parser.parse_args()
    load_start = os.getloadavg()
    result = run(args)
    text = report(result, args, "python benchmarks/bench_serving_kill.py " + " ".join(sys.argv[1:]), load_start)
    print(text)
    if args.write:
        write(text, ROOT / "benchmarks" / "results" / "serving.md")


if __name__ == "__main__":
    main()
