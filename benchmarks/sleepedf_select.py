"""Choose an EEG configuration on inner validation data only (Sleep-EDF, Bonn EEG).

Each candidate (``--config``, by default ``configs/sleepedf-bigru.toml``, with ``--set``
overrides) is trained on the first ``--folds`` cross-validation folds through the runner's
own code; every member early-stops on its fold's inner early-stopping part
(``[data] inner_val_fraction``: subjects for Sleep-EDF, segments for Bonn), and the scores
printed are on that inner part only. The folds' held-out predictions are computed by the
shared code path but never printed or compared, so the choice does not look at the
cross-validated result that is reported.

Printed, averaged over the folds (and per fold):

* ``inner_best_score``: each member's best ``[train] monitor`` on its inner part, at the
  restored epoch (macro F1 for Sleep-EDF, the loss for Bonn);
* ``inner_ensemble``: each fold's members together (the bundle's average of their
  probabilities) on the same inner part, pooled over its samples (epochs of the nights):
  ``macro_f1`` and ``accuracy`` for a multiclass task, ``accuracy`` at 0.5 and ``auroc``
  for a binary one. With one seed it is the member's own prediction; with several it
  measures the seed ensemble a config with ``seeds = [...]`` would report.

Usage::

    MEDSEQ_DATA=../shared/data nice python benchmarks/sleepedf_select.py \
        --folds 3 --set features.per_night=true
    MEDSEQ_DATA=../shared/data nice python benchmarks/sleepedf_select.py \
        --config configs/bonn-eeg-five-set.toml --folds 3 --set 'seeds=[0,1,2]'
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


def inner_scores(overrides: list[str], n_folds: int, config_path: Path = CONFIG) -> dict:
    """Inner-validation scores of the candidate on the first ``n_folds`` folds."""
    config = load_config(config_path, overrides)
    folds, _ = _load_splits(config)
    start, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as out:
        bundle, *_ = train_bundle(config, folds[:n_folds], None, Path(out), progress=False)
    fits = bundle.train_config["fits"]
    scores = [f["best_score"] for f in fits]
    ensemble = _ensemble_scores(config.data.dataset, bundle, folds[:n_folds], len(config.seeds))
    return {
        "config": config_path.name,
        "overrides": overrides,
        "monitor": bundle.train_config.get("monitor", "loss"),
        "inner_best_score": float(np.mean(scores)),
        "per_member": [round(s, 4) for s in scores],
        "inner_ensemble": {k: float(np.mean([e[k] for e in ensemble])) for k in ensemble[0]},
        "ensemble_per_fold": [{k: round(v, 4) for k, v in e.items()} for e in ensemble],
        "best_epochs": [f["best_epoch"] for f in fits],
        "wall_s": round(time.perf_counter() - start, 1),
        "cpu_s": round(time.process_time() - cpu, 1),
    }


def _scores(task: str, y: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """Accuracy and macro F1 (multiclass) or accuracy at 0.5 and AUROC (binary)."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    if task == "binary":
        keep = ~np.isnan(y)
        y, prob = y[keep], prob[keep]
        return {
            "accuracy": float(accuracy_score(y, prob >= 0.5)),
            "auroc": float(roc_auc_score(y, prob)),
        }
    y, p = flatten_steps(y, prob)
    keep = ~np.isnan(y)
    pred = p[keep].argmax(axis=1)
    return {
        "macro_f1": float(f1_score(y[keep], pred, average="macro")),
        "accuracy": float(accuracy_score(y[keep], pred)),
    }


def _ensemble_scores(dataset: str, bundle: Bundle, folds: list[Fold], n_seeds: int) -> list:
    """Scores of each fold's members averaged, on that fold's inner early-stopping part."""
    spec, scores = get_dataset(dataset), []
    for k, fold in enumerate(folds):
        if fold.early_stop is None:
            raise ValueError("sleepedf_select needs [data] inner_val_fraction > 0")
        fold_bundle = Bundle(
            model_config=bundle.model_config,
            featurizer=bundle.featurizer,
            members=bundle.members[k * n_seeds : (k + 1) * n_seeds],
            task=bundle.task,
            class_names=bundle.class_names,
        )
        prob = fold_bundle.predict_arrays(featurise(spec, bundle.featurizer, fold.early_stop))
        y = np.asarray(fold.early_stop.y, dtype=np.float64)
        scores.append(_scores(bundle.task, y, prob))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()
    print(json.dumps(inner_scores(args.overrides, args.folds, args.config)))


if __name__ == "__main__":
    main()
