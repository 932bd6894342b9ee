"""Build benchmarks/results/physionet2012.md from the experiment runs of every config.

Usage::

    python benchmarks/physionet2012_table.py            # run the configs that have no result yet
    python benchmarks/physionet2012_table.py --rerun    # run all of them again

Each row is one ``medseq train configs/<name>.toml``; its test metrics come from that run's
``runs/<name>/results.json``, so the table is reproduced by those commands alone.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS = [
    ("logreg", "Logistic regression on summaries"),
    ("hgb", "Gradient-boosted trees (HistGradientBoosting) on summaries"),
    ("rnn", "RNN (tanh), mean pooling"),
    ("lstm", "LSTM, mean pooling"),
    ("gru", "GRU, mean pooling"),
    ("bigru", "Bidirectional GRU, mean pooling"),
    ("gru_attention", "GRU, attention pooling"),
    ("grud", "GRU-D (Che et al. 2018)"),
    ("gru_fusion", "GRU + summary fusion (default model)"),
]
REGRESSION_ROWS = [
    ("hgb_los", "Gradient-boosted trees on summaries"),
    ("gru_los", "GRU + summary fusion, MSE loss"),
]


def _run(name: str) -> dict:
    out = ROOT / "runs" / name
    cmd = [sys.executable, "-m", "medseq.cli", "train", f"configs/{name}.toml", "-o", str(out)]
    print("$", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    return json.loads((out / "results.json").read_text())


def _cell(metrics: dict, key: str) -> str:
    point, lo, hi = metrics[key]
    return f"{point:.3f} ({lo:.3f}–{hi:.3f})"


def _table(results: dict[str, dict]) -> str:
    lines = [
        "| model | test AUROC (95% CI) | test AUPRC (95% CI) | val AUROC (OOF) | seconds "
        "| command |",
        "|---|---|---|---|---:|---|",
    ]
    for name, label in ROWS:
        if name not in results:
            continue
        r = results[name]
        lines.append(
            f"| {label} | {_cell(r['test_metrics'], 'auroc')} "
            f"| {_cell(r['test_metrics'], 'auprc')} "
            f"| {r['val_metrics']['auroc']:.3f} | {r['seconds']:.0f} "
            f"| `medseq train configs/{name}.toml` |"
        )
    return "\n".join(lines)


def _regression_table(results: dict[str, dict]) -> str:
    lines = [
        "| model | test MSE (days², 95% CI) | test MAE (days, 95% CI) | test R² | val MAE (OOF) "
        "| command |",
        "|---|---|---|---:|---:|---|",
    ]
    for name, label in REGRESSION_ROWS:
        if name in results:
            r = results[name]
            test = r["test_metrics"]
            lines.append(
                f"| {label} | {_cell(test, 'mse')} | {_cell(test, 'mae')} "
                f"| {test['r2'][0]:.3f} | {r['val_metrics']['mae']:.2f} "
                f"| `medseq train configs/{name}.toml` |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rerun", action="store_true", help="run every config again")
    parser.add_argument("--only", nargs="*", help="config names to run (default: all rows)")
    args = parser.parse_args()
    results = {}
    for name, _ in ROWS + REGRESSION_ROWS:
        path = ROOT / "runs" / name / "results.json"
        wanted = args.only is None or name in args.only
        if wanted and (args.rerun or not path.exists()):
            results[name] = _run(name)
        elif path.exists():
            results[name] = json.loads(path.read_text())
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    import torch

    header = (
        "# PhysioNet 2012 in-hospital mortality: train/select on set A, test once on set B\n\n"
        "Protocol: set A split into 5 stratified folds; one model per fold, early-stopped on its\n"
        "fold (validation AUROC); the decision threshold (Youden) is chosen on the out-of-fold\n"
        "predictions of set A; set B (4000 stays, 568 deaths) is predicted once by the average\n"
        "of the 5 fold models. CIs: 1000 stratified bootstrap resamples of set B.\n\n"
        f"Machine: {cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"Python {platform.python_version()}.\n\n"
    )
    target = ROOT / "benchmarks" / "results" / "physionet2012.md"
    regression = (
        "\n\n## Length of stay (regression, days)\n\nSame protocol; stays whose length of "
        "stay is missing are excluded (counted by the task). MSE loss, early stopping on "
        "validation MAE.\n\n" + _regression_table(results)
    )
    target.write_text(header + _table(results) + regression + "\n")
    print(target.read_text())


if __name__ == "__main__":
    main()
