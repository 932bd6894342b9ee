"""Markdown tables of Sleep-EDF leave-one-subject-out runs, from their ``results.json``.

Usage::

    python benchmarks/sleepedf_results.py runs/sleepedf-bigru runs/sleepedf-hgb ...

Prints the pooled metrics of every run side by side (all held-out epochs of all nights),
the per-fold (per held-out subject) accuracy, macro F1 and kappa, and each run's
confusion matrix, as pasted into ``benchmarks/results/eeg.md``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

POOLED = ("accuracy", "macro_f1", "kappa", "f1_W", "f1_N1", "f1_N2", "f1_N3", "f1_REM")
PER_FOLD = ("accuracy", "macro_f1", "kappa")


def main(runs: list[str]) -> None:
    results = {Path(r).name: json.loads((Path(r) / "results.json").read_text()) for r in runs}
    names = list(results)
    print("| metric | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for metric in POOLED:
        cells = []
        for name in names:
            value = results[name]["val_metrics"][metric]
            mean, sd = results[name]["val_fold_mean_sd"][metric]
            cells.append(f"{value:.3f} ({mean:.3f} ± {sd:.3f})")
        print(f"| {metric} | " + " | ".join(cells) + " |")
    print("\nper held-out subject (fold k = subject k):\n")
    header = [f"{n} {m}" for n in names for m in PER_FOLD]
    print("| subject | " + " | ".join(header) + " |")
    print("|---:|" + "---:|" * len(header))
    for k in range(len(results[names[0]]["val_folds"])):
        cells = [f"{results[n]['val_folds'][k][m]:.3f}" for n in names for m in PER_FOLD]
        print(f"| {k} | " + " | ".join(cells) + " |")
    for name in names:
        classes = results[name]["class_names"]
        print(f"\n{name}: confusion matrix (rows true, columns predicted)\n")
        print("| true \\ pred | " + " | ".join(classes) + " | n |")
        print("|---|" + "---:|" * (len(classes) + 1))
        for label, row in zip(classes, results[name]["val_confusion"], strict=True):
            print(f"| {label} | " + " | ".join(str(v) for v in row) + f" | {sum(row)} |")
        print(f"\nrun time: {results[name]['seconds']:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
