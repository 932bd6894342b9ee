"""The patient-history results: Doctor AI and RETAIN against their baselines, and the MEDS path.

Trains ``configs/mimic3-doctorai.toml`` and ``configs/mimic3-retain.toml`` (the runner's
subject-level split: the test subjects are predicted once), scores the baselines of
``benchmarks/histories_baselines.py`` on the same test samples with the same bootstrap (the
config's ``n_boot`` resamples of test samples, 95 % percentile intervals), then writes the demo
as a MEDS folder (under ``runs/``) and trains both configs again from it with
``[data] dataset = "meds"``, checking the test predictions are the same. Prints markdown.

    python benchmarks/histories_table.py
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from histories_baselines import baseline_outputs, metric_table

from medseq.evaluation.multi import bootstrap_table
from medseq.experiment import load_config, run_experiment

CONFIGS = ("configs/mimic3-doctorai.toml", "configs/mimic3-retain.toml")
METRICS = {
    "next_visit": ("recall@10", "recall@20", "recall@30", "micro_auroc"),
    "mortality": ("auroc", "auprc"),
}
#: the validation metric each config was selected on (benchmarks/histories_sweep.py)
PRIMARY = {"next_visit": "recall@30", "mortality": "auroc"}


def _cell(ci) -> str:
    value, low, high = ci
    return f"{value:.3f} ({low:.3f}–{high:.3f})"


def _row(name: str, test: dict, val: dict, task: str, seconds: str, command: str) -> str:
    cells = [_cell(test[m]) for m in METRICS[task]] + [f"{val[PRIMARY[task]]:.3f}"]
    return f"| {name} | " + " | ".join(cells) + f" | {seconds} | `{command}` |"


def model_rows(path: str) -> tuple[list[str], Path]:
    config = load_config(path)
    start = time.perf_counter()
    result = run_experiment(config, progress=False)
    seconds = f"{time.perf_counter() - start:.0f}"
    rows = [
        _row(
            config.model["kind"],
            result.test_metrics,
            result.val_metrics,
            config.data.task,
            seconds,
            f"medseq train {path}",
        )
    ]
    y_test, test_preds = baseline_outputs(config, "test")
    y_val, val_preds = baseline_outputs(config, "val")
    for name, pred in test_preds.items():
        n_boot = config.evaluate.n_boot
        test = bootstrap_table(metric_table, y_test, pred, n_boot=n_boot, random_state=0)
        val = metric_table(y_val, val_preds[name])
        command = f"python benchmarks/histories_baselines.py {path} --part test"
        rows.append(_row(name, test, val, config.data.task, "<1", command))
    return rows, Path(config.output_dir)


def meds_check(path: str, meds_root: Path) -> str:
    config = load_config(path)
    data = replace(config.data, dataset="meds", train=str(meds_root.resolve()))
    out = f"{config.output_dir}-meds"
    start = time.perf_counter()
    result = run_experiment(replace(config, data=data, output_dir=out), progress=False)
    seconds = time.perf_counter() - start
    a = pd.read_csv(Path(config.output_dir) / "test_predictions.csv")
    b = pd.read_csv(Path(out) / "test_predictions.csv")
    same = a.shape == b.shape and np.array_equal(a.to_numpy(), b.to_numpy())
    first = METRICS[config.data.task][0]
    return (
        f"| {config.name} from MEDS | {result.test_metrics[first][0]:.3f} ({first}) | "
        f"{'identical' if same else 'DIFFERENT'} | {seconds:.0f} |"
    )


def main() -> None:
    from medseq.paths import dataset_dir
    from medseq.sources import meds, mimic3

    for path in CONFIGS:
        task = load_config(path).data.task
        head = " | ".join(f"test {m} (95% CI)" for m in METRICS[task])
        print(f"\n| model | {head} | val {PRIMARY[task]} (OOF) | seconds | command |")
        print("|---|" + "---|" * len(METRICS[task]) + "---:|---:|---|")
        rows, _ = model_rows(path)
        print("\n".join(rows), flush=True)
    start = time.perf_counter()
    root = meds.write(mimic3.read(dataset_dir("mimic3demo")), "runs/meds-mimic3demo")
    print(f"\nMIMIC demo written as MEDS to {root} in {time.perf_counter() - start:.1f} s")
    print("\n| run | test metric | test predictions vs MIMIC tables | seconds |")
    print("|---|---|---|---:|")
    for path in CONFIGS:
        print(meds_check(path, root), flush=True)


if __name__ == "__main__":
    main()
