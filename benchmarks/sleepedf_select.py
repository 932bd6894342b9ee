"""Choose the Sleep-EDF configuration on inner validation nights only.

Each candidate (``configs/sleepedf-bigru.toml`` with ``--set`` overrides) is trained on
the first ``--folds`` leave-one-subject-out folds through the runner's own code; every
member early-stops on its fold's inner early-stopping subjects (``inner_val_fraction``),
and the score printed is that inner validation macro F1 at the restored epoch, averaged
over the folds. The held-out subjects' predictions are computed by the shared code path
but never printed or compared, so the choice does not look at the LOSO result.

``inner_ensemble_macro_f1`` scores each fold's members together (the bundle's average of
their probabilities) on the same inner early-stopping nights, pooled over their epochs:
with one seed it is the member's own score, with several it measures the seed ensemble a
config with ``seeds = [...]`` would report, still on inner nights only.

Usage::

    MEDSEQ_DATA=../shared/data nice python benchmarks/sleepedf_select.py \
        --folds 3 --set features.recover_power=false
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from medseq.bundle import Bundle
from medseq.datasets.registry import get_dataset
from medseq.evaluation.multi import flatten_steps
from medseq.experiment.config import load_config
from medseq.experiment.data import Fold
from medseq.experiment.neural import featurise, train_bundle
from medseq.experiment.runner import _load_splits

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "sleepedf-bigru.toml"


def inner_scores(overrides: list[str], n_folds: int) -> dict:
    """Inner-validation best scores of the candidate on the first ``n_folds`` folds."""
    config = load_config(CONFIG, overrides)
    folds, _ = _load_splits(config)
    start, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as out:
        bundle, *_ = train_bundle(config, folds[:n_folds], None, Path(out), progress=False)
    fits = bundle.train_config["fits"]
    scores = [f["best_score"] for f in fits]
    ensemble = _ensemble_scores(config.data.dataset, bundle, folds[:n_folds], len(config.seeds))
    return {
        "overrides": overrides,
        "inner_macro_f1": float(np.mean(scores)),
        "per_fold": [round(s, 4) for s in scores],
        "inner_ensemble_macro_f1": float(np.mean(ensemble)),
        "ensemble_per_fold": [round(s, 4) for s in ensemble],
        "best_epochs": [f["best_epoch"] for f in fits],
        "wall_s": round(time.perf_counter() - start, 1),
        "cpu_s": round(time.process_time() - cpu, 1),
    }


def _ensemble_scores(dataset: str, bundle: Bundle, folds: list[Fold], n_seeds: int) -> list:
    """Macro F1 of each fold's members averaged, on that fold's inner early-stopping nights."""
    from sklearn.metrics import f1_score

    spec, scores = get_dataset(dataset), []
    for k, fold in enumerate(folds):
        if fold.early_stop is None:
            raise ValueError("sleepedf_select needs [data] inner_val_fraction > 0")
        members = bundle.members[k * n_seeds : (k + 1) * n_seeds]
        fold_bundle = Bundle(
            model_config=bundle.model_config,
            featurizer=bundle.featurizer,
            members=members,
            task=bundle.task,
            class_names=bundle.class_names,
        )
        prob = fold_bundle.predict_arrays(featurise(spec, bundle.featurizer, fold.early_stop))
        y, p = flatten_steps(fold.early_stop.y, prob)
        keep = ~np.isnan(y)
        scores.append(float(f1_score(y[keep], p[keep].argmax(axis=1), average="macro")))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()
    print(json.dumps(inner_scores(args.overrides, args.folds)))


if __name__ == "__main__":
    main()
