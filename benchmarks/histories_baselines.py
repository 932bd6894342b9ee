"""Non-recurrent baselines for the patient-history tasks, on the runner's own split.

* next visit: **frequency** (every sample gets the training frequency of each group: the
  same ranked list for everyone) and **previous visit** (the groups coded at the sample's
  most recent visit first, the rest by training frequency);
* mortality: **prevalence** (a constant: AUROC 0.5 by construction, shown for its AUPRC)
  and **logistic regression** on which codes the history holds (any visit), fitted with
  scikit-learn on the same VisitFeaturizer columns, C = 1.

The split is the config's ``[data] protocol`` split, recomputed exactly as the runner does,
so the baselines score the same validation folds and the same test samples as the models.

    python benchmarks/histories_baselines.py configs/mimic3-doctorai.toml
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import pandas as pd

from medseq.datasets.registry import get_dataset
from medseq.experiment import load_config
from medseq.experiment.data import resolve_data_path
from medseq.features.histories.visits import VisitFeaturizer
from medseq.sources.icd9 import DX_PREFIX, group
from medseq.tasks import histories


def split_for(config) -> tuple[Any, pd.Series | pd.DataFrame, Any]:
    """The read data, its labels and the runner's split of them."""
    spec = get_dataset(config.data.dataset)
    data = spec.read(resolve_data_path(config.data.train))
    labels = spec.labels(config.data.task, data)
    split = spec.protocol(config.data.protocol)(config.data, data, labels)
    return data, labels, split


def previous_visit_scores(
    data, ids: np.ndarray, columns: list[str], freq: np.ndarray
) -> np.ndarray:
    """1 + frequency for the groups of the sample's last visit, frequency for the rest."""
    level = histories.NEXT_VISIT_LEVELS[data.task]
    table = histories.samples(data.history, data.task).loc[ids]
    codes = histories.visit_codes(data.history)
    dx = codes[codes["code"].str.startswith(DX_PREFIX)]
    col = {c: j for j, c in enumerate(columns)}
    scores = np.tile(freq, (len(ids), 1))
    for i, (sid, cutoff) in enumerate(zip(table["subject_id"], table["cutoff"], strict=True)):
        mine = dx[(dx["subject_id"] == sid) & (dx["time"] < cutoff)]
        if mine.empty:
            continue
        last = mine[mine["visit"] == mine["visit"].max()]
        for g in {group(c, level) for c in last["code"]}:
            if g in col:
                scores[i, col[g]] += 1.0
    return scores


def logreg_scores(config, data, train_ids: np.ndarray, y_train, eval_ids) -> np.ndarray:
    """Logistic regression on code presence over the whole history (C = 1)."""
    from sklearn.linear_model import LogisticRegression

    table = histories.samples(data.history, data.task)
    featurizer = VisitFeaturizer(data.task, **config.features)
    featurizer.fit(data.history, table.loc[train_ids])

    def bag(ids):
        return (featurizer.transform(data.history, table.loc[ids])["visits"].sum(1) > 0) * 1.0

    model = LogisticRegression(C=1.0, max_iter=2000).fit(bag(train_ids), y_train)
    return model.predict_proba(bag(eval_ids))[:, 1]


def baseline_predictions(config, data, labels, train_ids, eval_ids) -> dict[str, np.ndarray]:
    """Each baseline's scores of ``eval_ids`` after fitting on ``train_ids``."""
    y_train = labels.loc[train_ids].to_numpy(dtype=np.float64)
    if isinstance(labels, pd.DataFrame):
        freq = np.nanmean(y_train, axis=0)
        columns = [str(c) for c in labels.columns]
        return {
            "frequency": np.tile(freq, (len(eval_ids), 1)),
            "previous visit": previous_visit_scores(data, eval_ids, columns, freq),
        }
    return {
        "prevalence": np.full(len(eval_ids), y_train.mean()),
        "logistic regression (code presence)": logreg_scores(
            config, data, train_ids, y_train, eval_ids
        ),
    }


def baseline_outputs(config, part: str = "val") -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Labels and every baseline's scores, out-of-fold on validation or on the test."""
    data, labels, split = split_for(config)
    pairs = [(np.union1d(*split.folds[0]), split.test)] if part == "test" else split.folds
    preds: dict[str, list[np.ndarray]] = {}
    ys = []
    for train_ids, eval_ids in pairs:
        ys.append(labels.loc[eval_ids].to_numpy(dtype=np.float64))
        for name, p in baseline_predictions(config, data, labels, train_ids, eval_ids).items():
            preds.setdefault(name, []).append(p)
    return np.concatenate(ys), {name: np.concatenate(p) for name, p in preds.items()}


def metric_table(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """recall@k and micro AUROC (next visit), or AUROC and AUPRC (mortality)."""
    from medseq.evaluation.ranking import ranking_metrics

    return ranking_metrics(y, p) if y.ndim == 2 else _binary(y, p)


def baseline_scores(config, part: str = "val") -> dict[str, dict[str, float]]:
    """Metrics of every baseline on the out-of-fold validation or on the test samples."""
    y, preds = baseline_outputs(config, part)
    return {name: metric_table(y, p) for name, p in preds.items()}


def _binary(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    return {"auroc": float(roc_auc_score(y, p)), "auprc": float(average_precision_score(y, p))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--part", choices=("val", "test"), default="val")
    args = parser.parse_args()
    for name, metrics in baseline_scores(load_config(args.config), args.part).items():
        print(name, {k: round(v, 4) for k, v in metrics.items()})


if __name__ == "__main__":
    main()
