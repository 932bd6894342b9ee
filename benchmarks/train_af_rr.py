"""Train the monitor's AF model on PhysioNet/CinC 2017 only (RR-interval features, numpy runtime).

Usage (from the repository root, ``PYTHONPATH=src MEDSEQ_DATA=../shared/data``)::

    python benchmarks/train_af_rr.py -o runs/af-rr/af_model.json \
        [--format medseq.af_rr/2] [--rr-cache runs/af-rr/cinc_rr.npz] [--max-records N]

Each CinC 2017 recording (AliveCor, 300 Hz, single lead; the 6999 recordings of the shared
copy) is passed through the monitor's own causal QRS detector
(:class:`medseq.monitoring.qrs.StreamingQRSDetector`), as the stream will be at run time;
``--rr-cache`` keeps the RR intervals in an ``.npz`` so that a second run (another format)
skips the detection. Every window of ``--intervals`` consecutive RR intervals (every
``--step``-th) becomes one row of :func:`medseq.monitoring.af_model.window_features` in the
chosen ``--format`` (``/1``: RR features; ``/2``: the same with and without the ectopic
beats of an RR-only rule), labelled AF when the recording's label is ``A`` (normal ``N``,
other rhythm ``O`` and noisy ``~`` recordings are the negatives: ``O`` holds the ectopy that
must not raise AF). Recordings are split by name: every fifth (``A00005``, ``A00010``, ...)
is held out, the rest fit a class-balanced logistic regression (scikit-learn).

The threshold is chosen on the held-out recordings as the monitor will use it: every beat's
window (step 1) gives P(AF), and a recording raises an AF alert when P(AF) stays at or above
``threshold_on`` for the AF rule's ``min_on_s`` (:class:`~medseq.monitoring.detector.
MonitorSettings`), as :class:`~medseq.monitoring.episodes.EpisodeTracker` opens an episode.
``threshold_on`` maximises the F1 of those alerts against the ``A`` label (precision: alerts
on ``A`` recordings among all alerts; sensitivity: ``A`` recordings alerted);
``threshold_off`` is half of it (hysteresis). No MIT-BIH record is read: the model is
evaluated on MIT-BIH by ``bench_monitor.py af``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

from medseq.monitoring.af_model import FEATURES_BY_FORMAT, FORMAT, AFModel, rr_windows
from medseq.monitoring.atrial import AtrialActivity
from medseq.monitoring.detector import MonitorSettings
from medseq.monitoring.qrs import StreamingQRSDetector


def _rr_series(
    max_records: int | None, cache: Path | None, atrial: bool = False
) -> tuple[list[str], list[str], list, list | None]:
    """Record names, labels, RR intervals (s) of CinC 2017 and, with ``atrial``, the P-wave
    correlation of the beat ending each interval; detected, or read from the cache."""
    if cache is not None and cache.exists():
        d = np.load(cache)
        if atrial and "p_corr" not in d.files:
            raise SystemExit(f"{cache} holds no P-wave correlations: give a new --rr-cache path")
        ids, labels, off = d["ids"].tolist(), d["labels"].tolist(), d["offsets"]
        rr_all = d["rr"]  # read once: each d["rr"] reads the whole array anew (13 GB of views)
        rrs = [rr_all[a:b] for a, b in itertools.pairwise(off)]
        pc_all = d["p_corr"] if atrial else None
        pcs = None if pc_all is None else [pc_all[a:b] for a, b in itertools.pairwise(off)]
        n = len(ids) if max_records is None else max_records
        return ids[:n], labels[:n], rrs[:n], None if pcs is None else pcs[:n]
    from medseq.paths import dataset_dir
    from medseq.sources.physionet2017 import iter_records, read_reference

    folder = dataset_dir("physionet2017")
    reference = read_reference(folder / "REFERENCE-v3.csv")
    ids, labels, rrs, pcs = [], [], [], []
    for i, signal in enumerate(iter_records(folder)):
        if max_records is not None and i >= max_records:
            break
        x = np.asarray(signal.samples[:, 0], float)
        peaks = StreamingQRSDetector(signal.fs_hz).push(x)
        ids.append(signal.record_id)
        labels.append(str(reference[signal.record_id]))
        rrs.append(np.diff(peaks) / signal.fs_hz)
        pcs.append(AtrialActivity(signal.fs_hz).push(x, 0, peaks)[1:])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        offsets = np.cumsum([0] + [len(r) for r in rrs])
        np.savez(cache, ids=np.array(ids), labels=np.array(labels), offsets=offsets,
                 rr=np.concatenate(rrs), p_corr=np.concatenate(pcs))  # fmt: skip
    return ids, labels, rrs, pcs if atrial else None


def _alerted(p: np.ndarray, t_s: np.ndarray, threshold: float, min_on_s: float) -> bool:
    """Whether P(AF) per beat ``p`` at times ``t_s`` stays >= threshold for min_on_s: the
    first onset of :class:`EpisodeTracker` with ``min_on_beats=1``."""
    above = np.concatenate([[False], p >= threshold, [False]])
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))
    runs = zip(edges[::2], edges[1::2], strict=True)  # [start, stop) of each run above
    return any(t_s[b - 1] - t_s[a] >= min_on_s for a, b in runs)


def _alert_scores(per_record: list, is_af: np.ndarray, threshold: float) -> dict[str, float]:
    min_on_s = MonitorSettings().af_rule.min_on_s
    alerted = np.array([_alerted(p, t, threshold, min_on_s) for p, t in per_record], bool)
    tp = int((alerted & is_af).sum())
    precision, recall = tp / max(int(alerted.sum()), 1), tp / max(int(is_af.sum()), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return {
        "precision": precision,
        "sensitivity": recall,
        "f1": f1,
        "alerts": int(alerted.sum()),
        "false_alerts": int((alerted & ~is_af).sum()),
    }


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", required=True, help="JSON file to write")
    parser.add_argument("--intervals", type=int, default=24, help="RR intervals per window")
    parser.add_argument("--step", type=int, default=2, help="beats between training windows")
    parser.add_argument("--max-records", type=int, default=None)
    parser.add_argument("--format", default=FORMAT, choices=sorted(FEATURES_BY_FORMAT))
    parser.add_argument("--rr-cache", type=Path, default=None, help=".npz of detected RR")
    return parser.parse_args()


def main() -> None:
    args = _parse()
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    started = time.perf_counter()
    atrial = args.format == "medseq.af_rr/3"
    ids, labels, rrs, pcs = _rr_series(args.max_records, args.rr_cache, atrial)
    pcs = pcs if pcs is not None else [None] * len(rrs)
    held = np.array([int(r[1:]) % 5 == 0 for r in ids])
    is_af = np.array([lab == "A" for lab in labels])
    train = [
        rr_windows(rr, args.intervals, args.step, args.format, p_corr=pc)
        for rr, pc in zip(rrs, pcs, strict=True)
    ]
    x = np.concatenate([w for w, h in zip(train, held, strict=True) if not h])
    y = np.concatenate([np.full(len(w), a) for w, a, h in zip(train, is_af, held, strict=True)
                        if not h])  # fmt: skip
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-12
    fit = LogisticRegression(class_weight="balanced", C=1.0, max_iter=5000)
    fit.fit((x - mean) / scale, y)
    state = {
        "format": args.format,
        "features": list(FEATURES_BY_FORMAT[args.format]),
        "n_intervals": args.intervals,
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": fit.coef_[0].tolist(),
        "intercept": float(fit.intercept_[0]),
        "threshold_on": 0.5,
        "threshold_off": 0.25,
    }
    model = AFModel(state)
    per_record, p_held = [], []
    for rr, pc in ((rr, pc) for rr, pc, h in zip(rrs, pcs, held, strict=True) if h):
        enough = len(rr) >= args.intervals
        p = model.predict_proba(model.features(rr, pc)) if enough else np.zeros(0)
        per_record.append((p, np.cumsum(rr)[args.intervals - 1 :]))
        p_held.append(p)
    y_held = np.concatenate([np.full(len(p), a) for p, a in zip(p_held, is_af[held], strict=True)])
    p_all = np.concatenate(p_held)
    grid = np.round(np.linspace(0.05, 0.99, 95), 2)
    scores = [_alert_scores(per_record, is_af[held], float(t)) for t in grid]
    k = int(np.argmax([s["f1"] for s in scores]))
    state["threshold_on"], state["threshold_off"] = float(grid[k]), float(grid[k]) / 2
    state["provenance"] = _provenance(args, y, held, is_af, y_held, p_all, scores[k])
    state["provenance"]["heldout_auc"] = float(roc_auc_score(y_held, p_all))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(state, indent=1))
    print(json.dumps(state["provenance"], indent=1))
    names = FEATURES_BY_FORMAT[args.format]
    print(f"coefficients: {dict(zip(names, np.round(fit.coef_[0], 3).tolist(), strict=True))}")
    print(f"threshold_on {grid[k]:.2f}; wrote {out} ({time.perf_counter() - started:.0f} s)")


def _provenance(
    args: argparse.Namespace,
    y: np.ndarray,
    held: np.ndarray,
    is_af: np.ndarray,
    y_held: np.ndarray,
    p_all: np.ndarray,
    best: dict[str, float],
) -> dict[str, object]:
    """Where the model came from and its held-out CinC 2017 figures (written in the JSON)."""
    on = p_all >= 0.5
    return {
        "trained_on": "PhysioNet/CinC 2017 training2017 (shared copy), every recording whose "
        "number is not a multiple of 5; threshold on the others (recording-level AF alerts)",
        "command": "python benchmarks/train_af_rr.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in vars(args).items()
            if k != "output" and v is not None
        ),
        "train_recordings": int((~held).sum()),
        "heldout_recordings": int(held.sum()),
        "heldout_af_recordings": int((held & is_af).sum()),
        "train_windows": len(y),
        "train_af_windows": int(y.sum()),
        "heldout_windows": len(y_held),
        "heldout_af_windows": int(y_held.sum()),
        "heldout_window_precision_at_0.5": float((y_held & on).sum() / max(on.sum(), 1)),
        "heldout_window_recall_at_0.5": float((y_held & on).sum() / max(y_held.sum(), 1)),
        "heldout_alert_precision": best["precision"],
        "heldout_alert_sensitivity": best["sensitivity"],
        "heldout_alert_f1": best["f1"],
        "heldout_alerts": best["alerts"],
        "heldout_false_alerts": best["false_alerts"],
    }


if __name__ == "__main__":
    main()
