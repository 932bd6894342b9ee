"""Train the monitor's AF model on PhysioNet/CinC 2017 only (RR-interval features, numpy runtime).

Usage (from the repository root, ``PYTHONPATH=src MEDSEQ_DATA=../shared/data``)::

    python benchmarks/train_af_rr.py -o runs/af-rr/af_model.json [--max-records N]

Each CinC 2017 recording (AliveCor, 300 Hz, single lead; the 6999 recordings of the shared
copy) is passed through the monitor's own causal QRS detector
(:class:`medseq.monitoring.qrs.StreamingQRSDetector`), as the stream will be at run time;
every window of ``--intervals`` consecutive RR intervals (every ``--step``-th) becomes one row
of :func:`medseq.monitoring.af_model.rr_features`, labelled AF when the recording's label is
``A`` (normal ``N``, other rhythm ``O`` and noisy ``~`` recordings are the negatives: ``O``
holds the ectopy that must not raise AF). Recordings are split by name: every fifth
(``A00005``, ``A00010``, ...) is held out for choosing the thresholds, the rest fit a
class-balanced logistic regression (scikit-learn). ``threshold_on`` maximises the F1 of AF
windows on the held-out recordings; ``threshold_off`` is half of it (hysteresis). No
MIT-BIH record is read: the model is evaluated on MIT-BIH by ``bench_monitor.py af``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from medseq.monitoring.af_model import FEATURES, FORMAT, AFModel, rr_windows
from medseq.monitoring.qrs import StreamingQRSDetector


def _windows(max_records: int | None, n_intervals: int, step: int):
    from medseq.paths import dataset_dir
    from medseq.sources.physionet2017 import iter_records, read_reference

    folder = dataset_dir("physionet2017")
    labels = read_reference(folder / "REFERENCE-v3.csv")
    rows, ys, held_out = [], [], []
    for i, signal in enumerate(iter_records(folder)):
        if max_records is not None and i >= max_records:
            break
        x = np.asarray(signal.samples[:, 0], np.float64)
        peaks = StreamingQRSDetector(signal.fs_hz).push(x)
        feats = rr_windows(np.diff(peaks) / signal.fs_hz, n_intervals, step)
        if not len(feats):
            continue
        rows.append(feats)
        ys.append(np.full(len(feats), labels[signal.record_id] == "A"))
        held_out.append(np.full(len(feats), int(signal.record_id[1:]) % 5 == 0))
    return np.concatenate(rows), np.concatenate(ys), np.concatenate(held_out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", required=True, help="JSON file to write")
    parser.add_argument("--intervals", type=int, default=24, help="RR intervals per window")
    parser.add_argument("--step", type=int, default=2, help="beats between windows")
    parser.add_argument("--max-records", type=int, default=None)
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score, roc_auc_score

    started = time.perf_counter()
    x, y, held = _windows(args.max_records, args.intervals, args.step)
    mean, scale = x[~held].mean(axis=0), x[~held].std(axis=0) + 1e-12
    fit = LogisticRegression(class_weight="balanced", C=1.0, max_iter=2000)
    fit.fit((x[~held] - mean) / scale, y[~held])
    state = {
        "format": FORMAT,
        "features": list(FEATURES),
        "n_intervals": args.intervals,
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": fit.coef_[0].tolist(),
        "intercept": float(fit.intercept_[0]),
        "threshold_on": 0.5,
        "threshold_off": 0.25,
    }
    p = AFModel(state).predict_proba(x[held])
    grid = np.linspace(0.05, 0.99, 95)
    f1 = [f1_score(y[held], p >= t) for t in grid]
    best = float(grid[int(np.argmax(f1))])
    state["threshold_on"], state["threshold_off"] = best, best / 2
    state["provenance"] = {
        "trained_on": "PhysioNet/CinC 2017 training2017 (shared copy), every recording whose "
        "number is not a multiple of 5; thresholds on the others",
        "command": "python benchmarks/train_af_rr.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
            if k != "output" and v is not None
        ),
        "train_windows": int((~held).sum()),
        "train_af_windows": int(y[~held].sum()),
        "heldout_windows": int(held.sum()),
        "heldout_af_windows": int(y[held].sum()),
        "heldout_auc": float(roc_auc_score(y[held], p)),
        "heldout_f1": float(max(f1)),
        "heldout_precision": float((y[held] & (p >= best)).sum() / max((p >= best).sum(), 1)),
        "heldout_recall": float((y[held] & (p >= best)).sum() / max(y[held].sum(), 1)),
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(state, indent=1))
    print(json.dumps(state["provenance"], indent=1))
    print(f"coefficients: {dict(zip(FEATURES, np.round(fit.coef_[0], 3), strict=True))}")
    print(f"wrote {out} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
