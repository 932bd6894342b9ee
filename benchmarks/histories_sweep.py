"""Choose the patient-history settings on validation only (out-of-fold), never on the test.

Runs a base config with each override set and prints the out-of-fold validation metrics
(recall@k for next visit, AUROC/AUPRC for mortality). The runner also predicts the test
samples, but this script neither prints nor stores them.

    python benchmarks/histories_sweep.py configs/mimic3-doctorai.toml
    python benchmarks/histories_sweep.py configs/mimic3-retain.toml
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from medseq.experiment import parse_config, run_experiment

GRIDS = {
    "next_visit": [
        {},
        {"features": {"level": "code"}},
        {"model": {"embedding_size": 64, "hidden_size": 64}},
        {"model": {"embedding_size": 16, "hidden_size": 16}},
        {"train": {"lr": 1e-2}},
        {"features": {"min_count": 2}},
    ],
    "mortality": [
        {},
        {"features": {"level": "code"}},
        {"features": {"min_count": 1}},
        {"model": {"embedding_size": 16, "alpha_hidden_size": 16, "beta_hidden_size": 16}},
        {"train": {"lr": 1e-2}},
        {"model": {"dropout_embedding": 0.5, "dropout_context": 0.5}},
    ],
}
SHOWN = ("recall@10", "recall@20", "recall@30", "micro_auroc", "auroc", "auprc")


def merged(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for section, values in override.items():
        out.setdefault(section, {}).update(values)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    args = parser.parse_args()
    base = tomllib.loads(Path(args.config).read_text())
    base.setdefault("evaluate", {})["n_boot"] = 10  # the test CIs are not looked at here
    print("| override | " + " | ".join(SHOWN) + " | seconds |")
    print("|---|" + "---:|" * (len(SHOWN) + 1))
    for k, override in enumerate(GRIDS[base["data"]["task"]]):
        raw = merged(base, override)
        raw["output_dir"] = f"runs/sweep-{base['name']}-{k}"
        start = time.perf_counter()
        result = run_experiment(parse_config(raw), progress=False)
        val = result.val_metrics
        cells = [f"{val[m]:.3f}" if m in val else "" for m in SHOWN]
        name = override or "(base config)"
        seconds = time.perf_counter() - start
        print(f"| {name} | " + " | ".join(cells) + f" | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
