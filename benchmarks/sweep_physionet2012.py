"""Compare hyperparameters on validation data only (set A out-of-fold), never on set B.

Usage::

    python benchmarks/sweep_physionet2012.py configs/gru_fusion.toml model.hidden_size=64 \
        train.lr=5e-4

Each run is the config with the overrides applied and ``data.test = ""``, so no test metric
is computed; its out-of-fold validation AUROC/AUPRC on set A is appended as a row to
``benchmarks/results/sweep_physionet2012.md``. This is how the default model was chosen.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import tomllib

from medseq.experiment import parse_config, run_experiment

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "benchmarks" / "results" / "sweep_physionet2012.md"
HEADER = (
    "# Hyperparameter selection on PhysioNet 2012 set A (validation only)\n\n"
    "Out-of-fold validation metrics on set A (5 folds); set B is not read by these runs.\n"
    "Command: `python benchmarks/sweep_physionet2012.py CONFIG [section.key=value ...]`.\n\n"
    "| config | overrides | val AUROC | val AUPRC | seconds |\n|---|---|---:|---:|---:|\n"
)


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return {"true": True, "false": False}.get(text, text)


def _apply(raw: dict, override: str) -> None:
    key, sep, value = override.partition("=")
    if not sep:
        raise SystemExit(f"override {override!r} must look like [section.]key=value")
    section, _, field = key.rpartition(".")
    target = raw.setdefault(section, {}) if section else raw
    target[field] = _parse_value(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    raw = tomllib.loads(args.config.read_text())
    for override in args.overrides:
        _apply(raw, override)
    raw.setdefault("data", {})["test"] = ""
    tag = "-".join([args.config.stem, *[o.replace("=", "") for o in args.overrides]])
    raw["output_dir"] = str(ROOT / "runs" / "sweep" / tag)
    raw.setdefault("train", {})["progress"] = False
    result = run_experiment(parse_config(raw, default_name=tag), progress=False)
    val = result.val_metrics
    row = (
        f"| {args.config.name} | {' '.join(args.overrides) or '(none)'} | {val['auroc']:.4f} "
        f"| {val['auprc']:.4f} | {result.seconds:.0f} |\n"
    )
    if not TABLE.exists():
        TABLE.write_text(HEADER)
    with TABLE.open("a") as handle:
        handle.write(row)
    sys.stdout.write(row)


if __name__ == "__main__":
    main()
