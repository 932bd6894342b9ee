"""Benchmark: choose the drift settings on PhysioNet 2012 set A, then test them on set B and
on shifted populations.

The stream goes through the service's own monitor (:class:`medseq.drift.DriftWindow`, via
:func:`medseq.drift.replay.replay`) with the bundle's featurizer and predictions, in
requests of ``--per-request`` stays; no HTTP (``benchmarks/bench_drift.py`` measures the
REST path and its cost).

1. **Choose on set A only.** Each of the 5 CV folds of set A is replayed against a
   reference profiled from the other 4 folds, with its out-of-fold predictions
   (``val_predictions.csv`` of the training run): 20 windows of 200 held-out stays in all.
   Each setting of the grid (window, PSI, alpha) is also replayed on set-A streams of one
   ICU type against the bundle's reference. Rule, fixed before looking at set B: keep the
   settings whose flag never came on over held-out set A (after any request); among them
   the smallest mean delay to the alarm on the set-A ICU-type streams; ties go to the most
   cautious (larger PSI, then smaller alpha, then larger window).
2. **Apply, fixed.** Set B (4000 stays, the same population) in subject order: windows
   flagged, requests flagged. Set B stays of one ICU type, each in a fresh monitor: stays
   to the alarm and the features drifting after one window. PhysioNet 2019 stays (hospital
   systems A and B, first 48 h), mapped to the 2012 variables (:data:`MAP_2019`).

Usage: ``python benchmarks/drift_replay.py RUN_DIR [--per-request 20] [--append]``
where ``RUN_DIR`` is the output folder of ``medseq train configs/default.toml``.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medseq.bundle import load_bundle
from medseq.drift import DriftSettings
from medseq.drift.replay import Replay, replay, rotation_profiles
from medseq.experiment.data import read_set
from medseq.features.base import describe

RESULTS = Path(__file__).parent / "results" / "uncertainty.md"
ICU_TYPES = {1: "coronary care", 2: "cardiac surgery recovery", 3: "medical", 4: "surgical"}
WINDOWS = (100, 200)
PSIS = (0.1, 0.15, 0.2, 0.25)
ALPHAS = (1e-2, 1e-3, 1e-4, 1e-5)

#: PhysioNet 2019 column -> PhysioNet 2012 variable, same unit (both Challenges' tables).
#: 2019 does not say whether a pressure is invasive; the non-invasive codes are used.
#: Left out (no 2012 counterpart): O2Sat, EtCO2, BaseExcess, Calcium, Chloride,
#: Bilirubin_direct, Phosphate, Hgb, PTT, Fibrinogen. Never charted in 2019: GCS, Urine,
#: MechVent, Weight, Na, Albumin, ALT, Cholesterol, TroponinT, PaO2.
MAP_2019 = {
    "HR": "HR", "Temp": "Temp", "SBP": "NISysABP", "MAP": "NIMAP", "DBP": "NIDiasABP",
    "Resp": "RespRate", "HCO3": "HCO3", "FiO2": "FiO2", "pH": "pH", "PaCO2": "PaCO2",
    "SaO2": "SaO2", "AST": "AST", "BUN": "BUN", "Alkalinephos": "ALP",
    "Creatinine": "Creatinine", "Glucose": "Glucose", "Lactate": "Lactate",
    "Magnesium": "Mg", "Potassium": "K", "Bilirubin_total": "Bilirubin",
    "TroponinI": "TroponinI", "Hct": "HCT", "WBC": "WBC", "Platelets": "Platelets",
}  # fmt: skip
HOURS_2012 = 48.0
#: 2012 variables and descriptors a mapped 2019 stay never has: they drift by construction.
NOT_IN_2019 = {
    "ALT", "Albumin", "Cholesterol", "DiasABP", "GCS", "MAP", "MechVent", "Na", "PaO2",
    "SysABP", "TroponinT", "Urine", "Weight", "Height",
}  # fmt: skip


def variable_of(feature: str) -> str:
    """The variable or descriptor behind a feature name (``GCS_log_count`` -> ``GCS``,
    ``static:Weight`` -> ``Weight``)."""
    return feature.split(":")[-1].split("=")[0].split("_")[0]


def settings_of(window: int, psi: float, alpha: float) -> DriftSettings:
    """The monitor of one grid point: alarm from half a window, checked every 10 stays."""
    return DriftSettings(window=window, min_samples=window // 2, psi=psi, alpha=alpha)


def physionet2019_as_2012(path: Path, n: int) -> Any:
    """The first ``n`` stays of a PhysioNet 2019 set as a PhysioNet 2012 set (no outcomes).

    Events are the mapped variables (:data:`MAP_2019`) of the first 48 ICU hours
    (``time`` = ``ICULOS``, hours); descriptors: Age, Gender (both 0 = female), ICUType 3
    (medical) for ``Unit1`` (MICU) and 4 (surgical) for ``Unit2`` (SICU), NaN where
    neither; Height and Weight are not recorded.
    """
    from medseq.sources import physionet2012, physionet2019

    raw = physionet2019.read(path)
    ids = np.sort(raw.static.index.to_numpy())[:n]
    ev = raw.events[raw.events.subject_id.isin(ids)]
    ev = ev[ev.code.isin(list(MAP_2019)) & (ev.time <= HOURS_2012)]
    events = pd.DataFrame({
        "subject_id": ev.subject_id.to_numpy(np.int64),
        "time": ev.time.to_numpy(np.float64),
        "code": ev.code.map(MAP_2019).astype(str).to_numpy(),
        "value": ev.value.to_numpy(np.float64),
    }).sort_values(["subject_id", "time"], kind="stable").reset_index(drop=True)  # fmt: skip
    st = raw.static.loc[ids]
    icu = np.where(st.Unit1 == 1, 3.0, np.where(st.Unit2 == 1, 4.0, np.nan))
    static = pd.DataFrame(
        {"Age": st.Age, "Gender": st.Gender, "Height": np.nan, "ICUType": icu, "Weight": np.nan},
        index=pd.Index(ids, name="subject_id"),
    )
    outcomes = pd.DataFrame(index=static.index)
    return physionet2012.PhysioNet2012Set(events, static, outcomes, raw.report)


def stream(bundle, data, ids: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The served model inputs and the ensemble's predictions of ``ids``, in that order."""
    arrays = dict(bundle.spec().transform(bundle.featurizer, data, np.asarray(ids)))
    return arrays, np.asarray(bundle.predict_arrays(arrays))


def _rows(arrays: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in arrays.items()}


def choose(bundle, desc, a_arrays, oof, folds, icu_a, per_request) -> dict[str, Any]:
    """Replay every grid point on held-out set A and on set-A ICU-type streams."""
    rotations = rotation_profiles(
        desc, a_arrays, oof, folds, task=bundle.task, profile_predictions=False
    )
    rows = []
    for window, psi, alpha in itertools.product(WINDOWS, PSIS, ALPHAS):
        s = settings_of(window, psi, alpha)
        held = [
            replay(ref, desc, _rows(a_arrays, idx), oof[idx], s, per_request=per_request)
            for ref, idx in rotations.values()
        ]
        shifts = {}
        for t in ICU_TYPES:
            idx = np.flatnonzero(icu_a == t)
            r = replay(bundle.drift_profile, desc, _rows(a_arrays, idx), oof[idx], s,
                       per_request=per_request)  # fmt: skip
            shifts[t] = r.first_alarm
        delays = [d if d is not None else 10_000 for d in shifts.values()]
        rows.append({
            "window": window, "psi": psi, "alpha": alpha,
            "flagged_requests": sum(r.flagged_requests for r in held),
            "requests": sum(len(r.flags) for r in held),
            "flagged_windows": sum(r.flagged_windows for r in held),
            "windows": sum(len(r.windows) for r in held),
            "shift_delays": shifts, "mean_delay": float(np.mean(delays)),
        })  # fmt: skip
    quiet = [r for r in rows if r["flagged_requests"] == 0]
    if not quiet:
        raise SystemExit("no grid point stays quiet on held-out set A; widen the grid")
    best = min(quiet, key=lambda r: (r["mean_delay"], -r["psi"], r["alpha"], -r["window"]))
    return {"grid": rows, "chosen": best}


def apply(bundle, desc, s, per_request, streams) -> dict[str, Replay]:
    """Replay each named stream ``(arrays, predictions)`` against the bundle's reference."""
    return {
        name: replay(bundle.drift_profile, desc, arrays, pred, s, per_request=per_request)
        for name, (arrays, pred) in streams.items()
    }


def _top(r: Replay, k: int) -> tuple[int, str]:
    """Features drifting at the end of the first window (at the end of a shorter stream),
    and the first ``k`` with their PSI; ICU type one-hots are left out (they drift by
    construction in a one-type stream)."""
    if r.windows:
        drifting = r.windows[0]["drifting"]
    else:
        psis = {f["name"]: f["psi"] for f in r.last["features"]}
        drifting = {n: psis[n] for n in r.last["drifting_features"]}
    shown = [(n, p) for n, p in drifting.items() if not n.startswith("ICUType")]
    return len(drifting), ", ".join(f"{n} {p:.2f}" for n, p in shown[:k]) or "–"


def markdown(res: dict[str, Any], command: str) -> str:
    ch = res["chosen"]
    lines = [
        "## Drift settings chosen on set A, tested on set B and shifted streams (item 3)", "",
        f"Command: `{command}` (load average before / after: {res['load'][0]} / "
        f"{res['load'][1]}, 2 shared cores; {res['wall_s']:.0f} s). Bundle: `{res['bundle']}`.",
        "", "### 1. Choice on set A (held-out folds; set B not looked at)", "",
        "| window | PSI | alpha | held-out A: requests flagged | windows flagged "
        "| A ICU-type streams: stays to alarm (1/2/3/4) |",
        "|---:|---:|---:|---:|---:|---|",
    ]  # fmt: skip
    for r in res["grid"]:
        d = "/".join(str(v) if v is not None else "none" for v in r["shift_delays"].values())
        lines.append(
            f"| {r['window']} | {r['psi']} | {r['alpha']:g} | {r['flagged_requests']} / "
            f"{r['requests']} | {r['flagged_windows']} / {r['windows']} | {d} |"
        )
    lines += [
        "", f"Chosen: **window {ch['window']}, PSI {ch['psi']}, alpha {ch['alpha']:g}** "
        f"(alarm from {ch['window'] // 2} stays, checked every 10).", "",
        "### 2. Applied fixed to set B and to shifted streams", "",
        "| stream | stays | windows flagged at their end | requests flagged | stays to "
        "first alarm | drifting at the end of the first window (PSI; ICU type one-hots "
        "left out) | prediction PSI at the end of the stream |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]  # fmt: skip
    for name, r in res["applied"].items():
        n_drift, top = _top(r, 8)
        lines.append(
            f"| {name} | {r.n_samples} | {r.flagged_windows} / {len(r.windows)} | "
            f"{r.flagged_requests} / {len(r.flags)} | {r.first_alarm or 'none'} | "
            f"{n_drift}: {top} | "
            f"{r.last['predictions'][0]['psi']:.3f} |"
        )
    lines += [
        "", "PhysioNet 2019 streams, features of variables charted in both Challenges "
        f"(not {', '.join(sorted(NOT_IN_2019))}):", "",
        "| stream | drifting after one window, charted in both | first 10 (PSI) |",
        "|---|---:|---|",
    ]  # fmt: skip
    for name, r in res["applied"].items():
        if "2019" not in name or not r.windows:
            continue
        both = {
            n: p
            for n, p in r.windows[0]["drifting"].items()
            if variable_of(n) not in NOT_IN_2019 and not n.startswith("ICUType")
        }
        top = ", ".join(f"{n} {p:.2f}" for n, p in list(both.items())[:10]) or "–"
        lines.append(f"| {name} | {len(both)} | {top} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="output folder of `medseq train`")
    parser.add_argument("--per-request", type=int, default=20)
    parser.add_argument("--n-2019", type=int, default=2000, help="stays per 2019 set")
    parser.add_argument("--append", action="store_true", help=f"append to {RESULTS}")
    args = parser.parse_args()
    logging.getLogger("medseq.drift").setLevel(logging.ERROR)  # one warning per alarm
    load0, start = os.getloadavg()[0], time.perf_counter()
    bundle = load_bundle(args.run_dir / "bundle")
    if bundle.drift_profile is None:
        raise SystemExit(f"{args.run_dir / 'bundle'} carries no drift profile; retrain it")
    desc = describe(bundle.featurizer)
    val = pd.read_csv(args.run_dir / "val_predictions.csv")
    set_a = read_set("physionet2012", "physionet2012/set-a.tar.gz")
    a_ids = val.subject_id.to_numpy()
    a_arrays = dict(bundle.spec().transform(bundle.featurizer, set_a, a_ids))
    oof = val.y_pred.to_numpy()
    icu_a = set_a.static.loc[a_ids, "ICUType"].to_numpy()
    res: dict[str, Any] = choose(
        bundle, desc, a_arrays, oof, val.fold.to_numpy(), icu_a, args.per_request
    )
    ch = res["chosen"]
    s = settings_of(ch["window"], ch["psi"], ch["alpha"])
    set_b = read_set("physionet2012", "physionet2012/set-b.tar.gz")
    b_ids = np.sort(set_b.static.index.to_numpy())
    b_arrays, b_pred = stream(bundle, set_b, b_ids)
    icu_b = set_b.static.loc[b_ids, "ICUType"].to_numpy()
    streams = {"set B, all stays": (b_arrays, b_pred)}
    for t, label in ICU_TYPES.items():
        idx = np.flatnonzero(icu_b == t)
        streams[f"set B, ICU type {t} ({label}) only"] = (_rows(b_arrays, idx), b_pred[idx])
    from medseq.paths import dataset_dir

    for h in ("A", "B"):
        data = physionet2019_as_2012(
            dataset_dir("physionet2019") / f"training_set{h}.tar.gz", args.n_2019
        )
        ids = data.static.index.to_numpy()
        streams[f"PhysioNet 2019 hospital {h}, first {len(ids)} stays"] = stream(bundle, data, ids)
    res["applied"] = apply(bundle, desc, s, args.per_request, streams)
    res["load"] = (f"{load0:.2f}", f"{os.getloadavg()[0]:.2f}")
    res["wall_s"] = time.perf_counter() - start
    res["bundle"] = str(args.run_dir / "bundle")
    command = (
        f"python benchmarks/drift_replay.py {args.run_dir} --per-request {args.per_request} "
        f"--n-2019 {args.n_2019}"
    )
    text = markdown(res, command)
    print(text)
    if args.append:
        with RESULTS.open("a") as handle:
            handle.write("\n" + text)


if __name__ == "__main__":
    main()
