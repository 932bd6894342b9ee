"""A trained model's test predictions side by side with an existing risk score, same subjects.

Why: a model is only worth deploying if it does at least as well as the score clinicians
already have (for ICU mortality, APACHE IV). Both are scored on the *same* test subjects:
AUROC, AUPRC, Brier score, calibration slope and intercept, and the difference of each
pair with a paired, label-stratified bootstrap (the same resampled subjects for both), so
the interval of the difference accounts for the two sharing their errors.

Usage (eICU demo, APACHE IV's predicted hospital mortality)::

    python benchmarks/compare_with_score.py runs/eicu-hospital-mortality-24h \
        --score-file eicu_demo/apachePatientResult.csv.gz --id-column patientunitstayid \
        --score-column predictedhospitalmortality --where apacheversion=IV --name "APACHE IV"

The score file is read as CSV (relative paths: cwd, then the data root). Rows with a
missing or negative score (APACHE writes -1 when it could not score) are left out, and
the comparison runs on the subjects both have; how many were dropped is printed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from medseq.evaluation.bootstrap import resample_indices
from medseq.evaluation.calibration import calibration_slope_intercept
from medseq.experiment.data import resolve_data_path

METRICS = ("auroc", "auprc", "brier", "calibration_slope", "calibration_intercept")


def score_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """The point metrics of one set of probabilities."""
    slope, intercept = calibration_slope_intercept(y, np.clip(p, 1e-6, 1 - 1e-6))
    return {
        "auroc": float(roc_auc_score(y, p)),
        "auprc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "calibration_slope": float(slope),
        "calibration_intercept": float(intercept),
    }


def paired_bootstrap(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, n_boot: int, seed: int
) -> dict[str, dict[str, list[float]]]:
    """95 % percentile intervals of each metric of a, of b, and of a - b, same resamples."""
    draws: dict[str, list[list[float]]] = {m: [[], [], []] for m in METRICS}
    for rows in resample_indices(y, n_boot=n_boot, random_state=seed):
        ma, mb = score_metrics(y[rows], a[rows]), score_metrics(y[rows], b[rows])
        for m in METRICS:
            draws[m][0].append(ma[m])
            draws[m][1].append(mb[m])
            draws[m][2].append(ma[m] - mb[m])
    return {
        m: {
            key: [float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))]
            for key, d in zip(("a", "b", "diff"), draws[m], strict=True)
        }
        for m in METRICS
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a medseq train output (test_predictions.csv)")
    parser.add_argument("--score-file", required=True)
    parser.add_argument("--id-column", required=True)
    parser.add_argument("--score-column", required=True)
    parser.add_argument("--where", action="append", default=[], help="COLUMN=VALUE row filter")
    parser.add_argument("--scale", type=float, default=1.0, help="divide the score by this")
    parser.add_argument("--name", default="score")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)

    predictions = pd.read_csv(args.run_dir / "test_predictions.csv")
    if not {"subject_id", "y_true", "y_pred"} <= set(predictions.columns):
        raise SystemExit(
            f"{args.run_dir}/test_predictions.csv needs subject_id, y_true, y_pred; "
            f"it has {list(predictions.columns)}"
        )
    scores = pd.read_csv(resolve_data_path(args.score_file), dtype={args.score_column: str})
    for rule in args.where:
        column, _, value = rule.partition("=")
        if column not in scores.columns:
            raise SystemExit(f"--where {rule}: no column {column!r} in {args.score_file}")
        scores = scores[scores[column].astype(str) == value]
    score = pd.to_numeric(scores[args.score_column], errors="coerce") / args.scale
    usable = score.notna() & (score >= 0) & (score <= 1)
    table = pd.Series(score[usable].to_numpy(), index=scores.loc[usable, args.id_column])
    if table.index.duplicated().any():
        raise SystemExit(f"{args.score_file}: several rows per id; add a --where filter")
    joined = predictions.set_index("subject_id").join(table.rename("score"), how="inner")
    n_missing = len(predictions) - len(joined)
    y = joined["y_true"].to_numpy(dtype=np.int64)
    model, other = joined["y_pred"].to_numpy(np.float64), joined["score"].to_numpy(np.float64)
    result = {
        "n_test": len(predictions),
        "n_compared": len(joined),
        "n_without_score": n_missing,
        "n_positive": int(y.sum()),
        "model": score_metrics(y, model),
        args.name: score_metrics(y, other),
        "ci": paired_bootstrap(y, model, other, args.n_boot, args.seed),
    }
    print(
        f"{len(joined)} of {len(predictions)} test subjects have a {args.name} score "
        f"({n_missing} without); {int(y.sum())} positive"
    )
    print(f"| metric | model (95 % CI) | {args.name} (95 % CI) | model - {args.name} (95 % CI) |")
    print("|---|---|---|---|")
    for m in METRICS:
        ci = result["ci"][m]
        print(
            f"| {m} | {result['model'][m]:.3f} ({ci['a'][0]:.3f}-{ci['a'][1]:.3f}) "
            f"| {result[args.name][m]:.3f} ({ci['b'][0]:.3f}-{ci['b'][1]:.3f}) "
            f"| {result['model'][m] - result[args.name][m]:+.3f} "
            f"({ci['diff'][0]:+.3f} to {ci['diff'][1]:+.3f}) |"
        )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
