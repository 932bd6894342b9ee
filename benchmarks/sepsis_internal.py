"""Sepsis early warning, internal protocol, GRU against trees on the same folds (issue 15).

Runs ``configs/sepsis-gru.toml`` (its ``[model]`` GRU and its ``[baseline]`` trees on
hand-made causal history features) through the runner's own split and fitting functions on a
random subsample of patients of both hospital systems, and scores both the way the
Challenge would ask for a deployed alarm: the decision threshold of each fold is the
utility-maximising one on the **other** folds' out-of-fold risks (so no fold's threshold
sees its own labels), then normalized utility, detection and false alarms are computed over
all patients with percentile bootstrap CIs over patients
(:func:`medseq.evaluation.early_warning.early_warning_with_ci`); hourly AUROC/AUPRC use the
raw risks.

Scored hours: the first 72 h of each stay (the task's grid), not whole stays.

Usage::

    MEDSEQ_DATA=../shared/data OMP_NUM_THREADS=1 nice python benchmarks/sepsis_internal.py \\
        --per-set 1000 --seed 0 --out /tmp/sepsis_internal --set train.num_threads=1
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import resource
import tarfile
import time
from pathlib import Path

import numpy as np

from medseq.evaluation.early_warning import early_warning_with_ci
from medseq.evaluation.utility import best_utility_threshold, normalized_utility
from medseq.experiment import load_config
from medseq.paths import dataset_dir


def subsample(out: Path, per_set: int, seed: int) -> Path:
    """``per_set`` random patients of each archive (A, B), unpacked in the official layout."""
    rng = random.Random(seed)
    for letter in "AB":
        folder = out / f"training_set{letter}"
        if folder.is_dir() and len(list(folder.glob("*.psv"))) == per_set:
            continue  # unpacked by an earlier run with these arguments
        folder.mkdir(parents=True, exist_ok=True)
        archive = dataset_dir("physionet2019") / f"training_set{letter}.tar.gz"
        with tarfile.open(archive) as tar:
            names = sorted(m.name for m in tar if m.isfile() and m.name.endswith(".psv"))
        chosen = set(rng.sample(names, per_set))
        with tarfile.open(archive) as tar:  # one pass in order: a .gz cannot seek back
            for member in tar:
                if member.name in chosen:
                    data = tar.extractfile(member).read()
                    (folder / member.name.rsplit("/", 1)[-1]).write_bytes(data)
    return out


def cross_fold_thresholds(y, risk, fold_sizes) -> list[float]:
    """Per fold, the utility-best threshold on the other folds' out-of-fold risks."""
    bounds = np.cumsum([0, *fold_sizes])
    out = []
    for k in range(len(fold_sizes)):
        other = np.ones(len(y), dtype=bool)
        other[bounds[k] : bounds[k + 1]] = False
        labels, lengths, flat = _flat(y[other], risk[other])
        best = best_utility_threshold(labels, flat, lengths)[0]
        out.append(min(best, 2.0))  # inf (no alarm is best): above every risk
    return out


def _flat(y: np.ndarray, risk: np.ndarray):
    scored = ~np.isnan(y)
    return y[scored], scored.sum(axis=1), risk[scored]


def score(y: np.ndarray, prob: np.ndarray, fold_sizes: list[int], n_boot: int) -> dict:
    """Utility etc. at cross-fold thresholds, with CIs; per-fold utility; raw AUROC/AUPRC."""
    risk = prob[..., 1]
    steps = min(y.shape[1], risk.shape[1])
    y, risk = y[:, :steps], np.nan_to_num(risk[:, :steps], nan=0.0)
    thresholds = cross_fold_thresholds(y, risk, fold_sizes)
    fold_of = np.repeat(np.arange(len(fold_sizes)), fold_sizes)
    shifted = risk - np.asarray(thresholds)[fold_of][:, None] + 0.5  # alarm: >= its fold's
    labels, lengths, flat = _flat(y, shifted)
    figures = early_warning_with_ci(labels, flat, lengths, 0.5, n_boot=n_boot)
    raw = early_warning_with_ci(labels, _flat(y, risk)[2], lengths, 0.5, n_boot=n_boot)
    figures["auroc"], figures["auprc"] = raw["auroc"], raw["auprc"]
    bounds = np.cumsum([0, *fold_sizes])
    per_fold = []
    for k in range(len(fold_sizes)):
        part = slice(bounds[k], bounds[k + 1])
        lab, lens, fl = _flat(y[part], shifted[part])
        per_fold.append(normalized_utility(lab, (fl >= 0.5).astype(float), lens))
    return {
        "figures": {k: list(map(float, v)) for k, v in figures.items()},
        "thresholds": thresholds,
        "utility_per_fold": per_fold,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/sepsis-gru.toml")
    parser.add_argument(
        "--per-set", type=int, default=1000, help="patients per system; 0: every staged patient"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument(
        "--models", default="gru,trees", help="comma list: gru, trees (the same folds either way)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from medseq.experiment.baselines import fit_baseline
    from medseq.experiment.neural import train_bundle
    from medseq.experiment.runner import _load_splits

    overrides = [*args.overrides, f'output_dir="{args.out / "run"}"']
    if args.per_set > 0:
        root = subsample(args.out / "data", args.per_set, args.seed)
        overrides.append(f'data.train="{root}"')
    config = load_config(args.config, overrides)
    start = time.perf_counter()
    folds, _ = _load_splits(config)
    sizes = [len(f.val.subject_ids) for f in folds]
    read_s = time.perf_counter() - start
    models = args.models.split(",")
    result: dict = {
        "command": "see module doc",
        "per_set": args.per_set,
        "seed": args.seed,
        "n_patients": int(sum(sizes)),
        "fold_sizes": sizes,
        "overrides": args.overrides,
        "seconds": {"read_split": read_s},
    }
    for model in models:
        start = time.perf_counter()
        if model == "gru":
            _, y, pred, _ = train_bundle(config, folds, None, args.out / "run", progress=False)
        else:
            y, pred, _ = fit_baseline(config, folds, None)
        result["seconds"][model] = time.perf_counter() - start
        result[model] = score(y, pred, sizes, args.n_boot)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (args.out / "sepsis_internal.json").write_text(json.dumps(result, indent=2))
    for model in models:
        figures = result[model]["figures"]
        cells = [f"{n} {v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]" for n, v in figures.items()]
        print(model, "|", " | ".join(cells))
        print("  thresholds", np.round(result[model]["thresholds"], 3).tolist())
        print("  utility per fold", np.round(result[model]["utility_per_fold"], 3).tolist())
    print(json.dumps(result["seconds"]), f"peak RSS {result['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
