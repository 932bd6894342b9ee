"""Benchmark: conformal coverage on the cross-validation test parts of a training run.

For datasets evaluated by cross-validation (CinC 2017: no separate test set), each fold's
out-of-fold predictions are its test part. The sets of fold ``k`` are calibrated on the
other folds' scores only (:func:`medseq.report.uncertainty.cross_fold_coverage`); the run's
``val_predictions.csv`` (written by ``medseq train``) holds what is needed: ``fold``, the
label and the prediction(s). Prints (and with ``--append`` adds to
``benchmarks/results/uncertainty.md``) coverage and mean set size per fold and pooled,
marginal and Mondrian, with 95 % bootstrap CIs.

Usage: ``python benchmarks/conformal_cv.py RUN_DIR --task multiclass [--coverage 0.9]``
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pandas as pd

from medseq.report.uncertainty import cross_fold_coverage

RESULTS = Path(__file__).parent / "results" / "uncertainty.md"


def _ci(t: list[float]) -> str:
    return f"{t[0]:.3f} ({t[1]:.3f} – {t[2]:.3f})"


def load(run_dir: Path, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Labels, predictions, folds and prediction column names of ``val_predictions.csv``."""
    frame = pd.read_csv(run_dir / "val_predictions.csv")
    if task in ("binary", "regression"):
        return frame.y_true.to_numpy(), frame.y_pred.to_numpy(), frame.fold.to_numpy(), ["y_pred"]
    if task != "multiclass":
        raise SystemExit(
            f"conformal_cv: task {task!r} not handled (binary, multiclass, regression)"
        )
    columns = [c for c in frame.columns if c.startswith("p_")]
    return frame.y_true.to_numpy(), frame[columns].to_numpy(), frame.fold.to_numpy(), columns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--task", required=True, choices=["binary", "multiclass", "regression"])
    parser.add_argument("--coverage", type=float, default=0.9)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--append", metavar="TITLE", help="append a section to the results file")
    args = parser.parse_args()
    y, pred, folds, columns = load(args.run_dir, args.task)
    variants = ["marginal"] if args.task == "regression" else ["marginal", "mondrian"]
    command = (
        f"python benchmarks/conformal_cv.py {args.run_dir} --task {args.task} "
        f"--coverage {args.coverage}"
    )
    lines = [f"## {args.append or args.run_dir}", "", f"Command: `{command}`", "",
             "| variant | CV test part | n | coverage (95 % CI) | mean set size (95 % CI) |",
             "|---|---|---:|---|---|"]  # fmt: skip
    for variant in variants:
        r = cross_fold_coverage(
            args.task, y, pred, folds, args.coverage, n_boot=args.n_boot,
            mondrian=variant == "mondrian",
        )  # fmt: skip
        for f in r["folds"]:
            lines.append(
                f"| {variant} | fold {f['fold']} | {f['n']} | {_ci(f['coverage'])} "
                f"| {_ci(f['set_size'])} |"
            )
        p = r["pooled"]
        lines.append(
            f"| {variant} | **pooled** | {p['n']} | {_ci(p['coverage'])} | {_ci(p['set_size'])} |"
        )
    lines += ["", f"Classes: {', '.join(columns)}; load average {os.getloadavg()[0]:.1f}."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.append:
        with RESULTS.open("a") as out:
            out.write("\n" + text)


if __name__ == "__main__":
    main()
