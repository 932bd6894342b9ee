"""Per-class Se / +P of a MIT-BIH(+SVDB) beat run, with bootstrap CIs by record.

Beats of one record are strongly correlated (one patient, one half hour), so resampling
beats gives intervals that are far too narrow. Here each resample draws the *records* with
replacement and sums their confusion matrices: the interval says how much the figure would
move with another set of patients of the same size.

Reads ``test_predictions.csv`` (``--part test``) or the pooled out-of-fold
``val_predictions.csv`` (``--part val``) that ``medseq train`` writes into its output
folder; the record of a beat is ``subject_id // 100_000`` (:mod:`medseq.datasets.mitbih`).

    python benchmarks/ecg_mitbih_svdb.py /tmp/svdb_runs/scalars --part val
    python benchmarks/ecg_mitbih_svdb.py /tmp/svdb_runs/scalars --part test --n-boot 1000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

CLASSES = ("N", "S", "V", "F")
ID_STRIDE = 100_000
SVDB_FIRST = 800


def per_record_confusion(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Record numbers and their (R, 4, 4) confusion matrices (rows true, columns predicted)."""
    missing = [f"p_{c}" for c in CLASSES if f"p_{c}" not in frame.columns]
    if missing or "y_true" not in frame.columns:
        raise SystemExit(f"predictions file lacks columns {missing or ['y_true']}")
    pred = frame[[f"p_{c}" for c in CLASSES]].to_numpy().argmax(axis=1)
    true = frame["y_true"].to_numpy().astype(np.int64)
    record = frame["subject_id"].to_numpy() // ID_STRIDE
    records = np.unique(record)
    index = np.searchsorted(records, record)
    matrices = np.zeros((len(records), len(CLASSES), len(CLASSES)), np.int64)
    np.add.at(matrices, (index, true, pred), 1)
    return records, matrices


def se_ppv(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class sensitivity and positive predictivity of one or many (…, 4, 4) matrices."""
    tp = np.diagonal(matrix, axis1=-2, axis2=-1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return tp / matrix.sum(axis=-1), tp / matrix.sum(axis=-2)


def table(matrices: np.ndarray, n_boot: int, seed: int, alpha: float = 0.05) -> pd.DataFrame:
    """Point Se / +P per class and their percentile intervals over record resamples."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(matrices), size=(n_boot, len(matrices)))
    boot = matrices[draws].sum(axis=1)  # (n_boot, 4, 4)
    se, ppv = se_ppv(matrices.sum(axis=0))
    se_b, ppv_b = se_ppv(boot)
    rows = []
    for k, name in enumerate(CLASSES):
        cells = {}
        for label, point, dist in (("Se", se[k], se_b[:, k]), ("+P", ppv[k], ppv_b[:, k])):
            ok = dist[np.isfinite(dist)]
            lo, hi = np.quantile(ok, [alpha / 2, 1 - alpha / 2]) if ok.size else (np.nan, np.nan)
            cells[label] = f"{point:.3f} ({lo:.3f}–{hi:.3f})"
        rows.append({"class": name, **cells})
    return pd.DataFrame(rows)


def criterion(matrix: np.ndarray) -> float:
    """Mean of V Se, V +P, S Se and S +P: the selection criterion fixed before the runs."""
    se, ppv = se_ppv(matrix)
    return float(np.mean([se[2], ppv[2], se[1], ppv[1]]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="output folder of medseq train")
    parser.add_argument("--part", choices=("test", "val"), default="test")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    path = args.run / f"{args.part}_predictions.csv"
    if not path.is_file():
        raise SystemExit(f"{path} does not exist (is {args.run} a medseq train output folder?)")
    records, matrices = per_record_confusion(pd.read_csv(path))
    print(f"{path}: {int(matrices.sum())} beats, {len(records)} records, "
          f"{args.n_boot} record resamples")  # fmt: skip
    frame = table(matrices, args.n_boot, args.seed)
    print("| class | Se (95 % CI by record) | +P (95 % CI by record) |\n|---|---:|---:|")
    for row in frame.itertuples(index=False):
        print(f"| {row[0]} | {row[1]} | {row[2]} |")
    total = matrices.sum(axis=0)
    print(f"\ncriterion (mean V Se, V +P, S Se, S +P): {criterion(total):.3f}")
    print("confusion (rows true N, S, V, F; columns predicted):")
    for name, row in zip(CLASSES, total, strict=True):
        print(f"{name} " + " ".join(f"{v:7d}" for v in row))
    svdb = records >= SVDB_FIRST
    if svdb.any() and (~svdb).any():
        for label, keep in (("MIT-BIH records", ~svdb), ("SVDB records", svdb)):
            se, ppv = se_ppv(matrices[keep].sum(axis=0))
            print(f"{label}: S Se {se[1]:.3f} +P {ppv[1]:.3f}; V Se {se[2]:.3f} +P {ppv[2]:.3f}")


if __name__ == "__main__":
    main()
