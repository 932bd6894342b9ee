"""Choose the AF alert rule (thresholds, minimum durations) on data other than MIT-BIH.

Usage (from the repository root, ``PYTHONPATH=src:benchmarks MEDSEQ_DATA=../shared/data``)::

    python benchmarks/select_af_rule.py --af-model runs/af-rr/af_v2.json \
        --rr-cache runs/af-rr/cinc_rr.npz -o runs/af-rr/af_v2_rule.json

MIT-BIH is the external test of the AF episodes and must not choose anything. Two other
sources were looked at:

- **SVDB** (``svdb/``, 58 records): its annotation files carry beat labels only; the one
  rhythm annotation in all 58 is a ``(N`` in record 852 (counted by :func:`svdb_rhythms`), so
  it has **no AF episode** to select on (its ectopy cannot be scored as false AF either, since
  no record is marked AF-free).
- **CinC 2017**, the AF model's own source: its held-out recordings (every fifth, never
  trained on) are 9-60 s long, too short to compare minimum durations of 10-30 s one
  recording at a time. They are therefore laid end to end into long pseudo-Holter streams
  (:func:`pseudo_holter`): blocks of non-AF recordings (normal ``N`` and other rhythm ``O``,
  where the ectopy is) alternate with blocks of AF recordings, whose span is one reference
  AF episode. The model's P(AF) is computed over the joined RR series (windows cross the
  joins, as they cross a rhythm change in a real stream) and every candidate rule is run
  through the monitor's own :class:`~medseq.monitoring.episodes.EpisodeTracker`, with the
  episode scoring of ``bench_monitor.py af`` (any overlap; delay of the alerts reported
  after an onset).

The criterion is fixed here, before the one MIT-BIH scoring: among the rules whose episode
Se on the streams is at least :data:`MIN_SE` and whose median delay is at most
:data:`MAX_DELAY_S`, the highest episode +P (ties: the higher Se, then the shorter delay).
Run once per model file (formats 2 and 3 in ``monitor.md`` section 7); the model whose
chosen rule has the higher +P under the same criterion is the candidate for MIT-BIH.
The chosen rule is written into a copy of the model file (``threshold_on``,
``threshold_off`` and ``alert_rule``), which :class:`~medseq.monitoring.detector.
StreamDetector` then uses.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
from train_af_rr import _rr_series

from medseq.monitoring.af_model import AFModel
from medseq.monitoring.episodes import EpisodeRule, EpisodeTracker

MIN_SE = 0.90  # the episode Se target
MAX_DELAY_S = 30.0  # the delay target
THRESHOLDS_ON = (0.72, 0.8, 0.85, 0.9, 0.95)
OFF_RATIOS = (0.5, 0.8)  # threshold_off = ratio x threshold_on
MIN_ON_S = (10.0, 15.0, 20.0, 30.0)
MIN_OFF_S = (10.0, 20.0)


def svdb_rhythms(folder: Path) -> dict[str, list[str]]:
    """Rhythm annotations (``aux_note`` of the ``+`` labels) of every SVDB record found."""
    import wfdb

    out = {}
    for atr in sorted(folder.glob("*.atr")):
        ann = wfdb.rdann(str(atr.with_suffix("")), "atr")
        out[atr.stem] = [n.strip() for n in ann.aux_note if n.strip()]
    return out


def pseudo_holter(
    rrs: list[np.ndarray], labels: list[str], random_state: int
) -> tuple[np.ndarray, list[tuple[float, float]], list[int]]:
    """One long RR series ``(n,)`` from the given recordings, its AF episodes (s) and the
    order of the recordings in it (to join per-beat values, e.g. P-wave correlations, alike).

    Blocks of 4-20 non-AF recordings alternate with blocks of 1-6 AF recordings, in a
    random order fixed by ``random_state``; every recording is used once.
    """
    rng = np.random.default_rng(random_state)
    af = [i for i, lab in enumerate(labels) if lab == "A"]
    other = [i for i, lab in enumerate(labels) if lab != "A"]
    rng.shuffle(af)
    rng.shuffle(other)
    order: list[int] = []
    episodes, t = [], 0.0
    while af or other:
        for block, is_af in ((other, False), (af, True)):
            n = int(rng.integers(1, 7) if is_af else rng.integers(4, 21))
            take, block[:] = block[:n], block[n:]
            if not take:
                continue
            span = float(sum(rrs[i].sum() for i in take))
            if is_af:
                episodes.append((t, t + span))
            order += take
            t += span
    return np.concatenate([rrs[i] for i in order]), episodes, order


def run_rule(
    p: np.ndarray, t_s: np.ndarray, on: float, off: float, rule: EpisodeRule
) -> list[tuple[float, float, float]]:
    """AF alerts ``(start_s, stop_s, reported_s)`` of P(AF) per beat, as the detector raises
    them (evidence ``p >= off`` while open, ``>= on`` while closed)."""
    tracker = EpisodeTracker(rule)
    found, start = [], None
    for pi, ti in zip(p.tolist(), t_s.tolist(), strict=True):
        alert = tracker.update(ti, pi >= (off if tracker.open else on))
        if alert is not None and alert.kind == "onset":
            start = (alert.start_s, alert.reported_s)
        elif alert is not None and start is not None:
            found.append((start[0], alert.start_s, start[1]))
            start = None
    if start is not None:
        found.append((start[0], float(t_s[-1]), start[1]))
    return found


def score(found: list, episodes: list) -> dict[str, float]:
    """Episode Se/+P (any overlap) and the delays, as ``bench_monitor.py af`` counts them."""
    hits, delays = 0, []
    for lo, hi in episodes:
        overlap = [f for f in found if f[0] < hi and f[1] > lo]
        if overlap:
            hits += 1
            reported = min(f[2] for f in overlap)
            if reported >= lo:
                delays.append(reported - lo)
    true_alerts = sum(any(e[0] < hi and e[1] > lo for e in episodes) for lo, hi, _ in found)
    return {"hits": hits, "episodes": len(episodes), "true_alerts": true_alerts,
            "alerts": len(found), "delays": delays}  # fmt: skip


def grid(streams: list) -> list[tuple]:
    """Every candidate rule scored over all streams: ``(on, off, min_on_s, min_off_s, Se,
    +P, median delay s, alerts)``."""
    rows = []
    for on, ratio, min_on, min_off in itertools.product(
        THRESHOLDS_ON, OFF_RATIOS, MIN_ON_S, MIN_OFF_S
    ):
        rule = EpisodeRule("AF", 1, 1, min_on_s=min_on, min_off_s=min_off)
        tot = [score(run_rule(p, t, on, on * ratio, rule), e) for p, t, e in streams]
        n_alerts = sum(s["alerts"] for s in tot)
        se = sum(s["hits"] for s in tot) / sum(s["episodes"] for s in tot)
        ppv = sum(s["true_alerts"] for s in tot) / max(n_alerts, 1)
        delay = float(np.median([d for s in tot for d in s["delays"]] or [np.nan]))
        rows.append((on, round(on * ratio, 3), min_on, min_off, se, ppv, delay, n_alerts))
    return rows


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--af-model", required=True, help="AF model JSON (train_af_rr.py)")
    parser.add_argument("--rr-cache", type=Path, required=True, help="train_af_rr.py's .npz")
    parser.add_argument("-o", "--output", required=True, help="the model with the chosen rule")
    parser.add_argument("--seeds", type=int, default=3, help="random stream layouts")
    parser.add_argument("--svdb", type=Path, default=None, help="SVDB folder (to count AF)")
    return parser.parse_args()


def _streams(model: AFModel, rr_cache: Path, seeds: int) -> list:
    """(P(AF) per beat, beat times, AF episodes) of ``seeds`` held-out CinC streams."""
    ids, labels, rrs, pcs = _rr_series(None, rr_cache, model.needs_atrial)
    pairs = zip(ids, labels, strict=True)
    keep = [int(r[1:]) % 5 == 0 and lab in ("N", "O", "A") for r, lab in pairs]
    h_rrs = [r for r, k in zip(rrs, keep, strict=True) if k]
    h_lab = [lab for lab, k in zip(labels, keep, strict=True) if k]
    h_pcs = None if pcs is None else [c for c, k in zip(pcs, keep, strict=True) if k]
    streams = []
    for seed in range(seeds):
        rr, episodes, order = pseudo_holter(h_rrs, h_lab, seed)
        pc = None if h_pcs is None else np.concatenate([h_pcs[i] for i in order])
        p = model.predict_proba(model.features(rr, pc))
        streams.append((p, np.cumsum(rr)[model.n_intervals - 1 :], episodes))
    hours = sum(s[1][-1] for s in streams) / 3600
    n_eps = sum(len(s[2]) for s in streams)
    print(f"{len(h_rrs)} held-out CinC recordings ({h_lab.count('A')} AF) in {seeds} streams: "
          f"{hours:.1f} h, {n_eps} AF episodes")  # fmt: skip
    return streams


def main() -> None:
    args = _parse()
    started = time.perf_counter()
    if args.svdb is not None:
        rhythms = svdb_rhythms(args.svdb)
        n_af = sum(n.startswith("(AF") for v in rhythms.values() for n in v)
        marked = {k: v for k, v in rhythms.items() if v}
        print(f"SVDB: {len(rhythms)} records, rhythm annotations {marked}, AF episodes {n_af}")
    model = AFModel.load(args.af_model)
    rows = grid(_streams(model, args.rr_cache, args.seeds))
    print("| on | off | min_on_s | min_off_s | episode Se | episode +P | delay (s) | alerts |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r[0]:.2f} | {r[1]:.3f} | {r[2]:.0f} | {r[3]:.0f} | {r[4]:.3f} | {r[5]:.3f} "
              f"| {r[6]:.1f} | {r[7]} |")  # fmt: skip
    ok = [r for r in rows if r[4] >= MIN_SE and r[6] <= MAX_DELAY_S]
    if not ok:
        raise SystemExit(f"no rule reaches episode Se {MIN_SE} with delay <= {MAX_DELAY_S} s")
    best = max(ok, key=lambda r: (r[5], r[4], -r[6]))
    state = model.state_dict()
    state["threshold_on"], state["threshold_off"] = best[0], best[1]
    state["alert_rule"] = {"min_on_s": best[2], "min_off_s": best[3]}
    state.setdefault("provenance", {})["alert_rule_selection"] = {
        "data": "held-out CinC 2017 (every fifth recording, N/O/A) laid into pseudo-Holter "
        f"streams, {args.seeds} random layouts; SVDB has no AF annotation; no MIT-BIH record",
        "criterion": f"highest episode +P with Se >= {MIN_SE} and median delay <= {MAX_DELAY_S} s",
        "episode_se": best[4], "episode_ppv": best[5], "median_delay_s": best[6],
    }  # fmt: skip
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(state, indent=1))
    print(f"chosen: on {best[0]}, off {best[1]}, min_on_s {best[2]}, min_off_s {best[3]}: "
          f"Se {best[4]:.3f}, +P {best[5]:.3f}, delay {best[6]:.1f} s; wrote {out} "
          f"({time.perf_counter() - started:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
