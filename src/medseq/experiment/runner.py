"""Run an experiment end to end: read, split, featurise, train, select, test once, save.

Model selection (early stopping, decision threshold) sees the validation split of the
training set only; the test set is predicted once, after everything is fixed.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medseq.experiment.baselines import fit_baseline
from medseq.experiment.config import ExperimentConfig
from medseq.experiment.data import (
    Fold,
    LabelledSet,
    file_sha256,
    labels_for,
    make_folds,
    read_set,
    resolve_data_path,
)

logger = logging.getLogger(__name__)


@dataclass
class ExperimentResult:
    """What an experiment produced: test metrics with CIs, validation metrics, where it saved."""

    name: str
    task: str
    test_metrics: dict[str, tuple[float, float, float]]
    val_metrics: dict[str, float]
    threshold: float | None
    bundle_dir: str | None
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "test_metrics": {k: list(v) for k, v in self.test_metrics.items()},
            "val_metrics": self.val_metrics,
            "threshold": self.threshold,
            "bundle_dir": self.bundle_dir,
            "seconds": self.seconds,
            **self.extra,
        }


def _read_labelled(config: ExperimentConfig, path: str) -> tuple[Any, pd.Series]:
    spec = config.data
    data = read_set(spec.dataset, path)
    logger.info("%s: %s", path, data.report.summary())
    labels = labels_for(spec.task, data)
    if spec.max_subjects is not None:
        labels = labels.sort_index().iloc[: spec.max_subjects]
    return data, labels


def _load_splits(config: ExperimentConfig) -> tuple[list[Fold], LabelledSet | None]:
    folds = make_folds(config.data, *_read_labelled(config, config.data.train))
    if not config.data.test:
        logger.info("no test set configured: a selection run, validation metrics only")
        return folds, None
    test_data, test_labels = _read_labelled(config, config.data.test)
    return folds, LabelledSet.select(test_data, test_labels, test_labels.index.to_numpy())


def _provenance(
    config: ExperimentConfig, folds: list[Fold], test: LabelledSet | None
) -> dict[str, Any]:
    paths = (
        {"train": config.data.train, "test": config.data.test}
        if test
        else {"train": config.data.train}
    )
    return {
        "dataset": config.data.dataset,
        "task": config.data.task,
        "files": {
            role: {"path": str(p), "sha256": file_sha256(resolve_data_path(p))}
            for role, p in paths.items()
        },
        "n_subjects": {
            "train": len(folds[0].train.subject_ids),
            "val": len(folds[0].val.subject_ids),
            "test": len(test.subject_ids) if test else 0,
        },
        "split": {
            "val_fraction": config.data.val_fraction,
            "cv_folds": config.data.cv_folds,
            "split_seed": config.data.split_seed,
        },
    }


def run_experiment(
    config: ExperimentConfig, *, resume: bool = False, progress: bool = True
) -> ExperimentResult:
    """Train and evaluate the experiment ``config``; save the bundle and ``results.json``.

    Under ``torchrun`` every rank reads the data and trains its share of each batch (DDP,
    :mod:`medseq.training.distributed`); the models, predictions and metrics are the same on
    every rank, and only rank 0 writes the bundle, ``results.json`` and the predictions.
    """
    start = time.perf_counter()
    out_dir = Path(config.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    folds, test = _load_splits(config)
    if config.baseline is not None:
        val_y, val_pred, test_pred = fit_baseline(config, folds, test)
        bundle_dir = None
    else:
        from medseq.experiment.neural import train_bundle

        bundle, val_y, val_pred, test_pred = train_bundle(
            config, folds, test, out_dir, resume=resume, progress=progress
        )
        bundle.provenance = _provenance(config, folds, test)
        bundle_dir = str(out_dir / "bundle")
    threshold, val_metrics, test_metrics = _score(config, val_y, val_pred, test, test_pred)
    if config.baseline is None:
        from medseq.bundle import save_bundle

        bundle.threshold = threshold
        bundle.metrics = {"validation": val_metrics, "test": _listed(test_metrics)}
        if config.task_type == "binary":
            from medseq.evaluation import fit_calibration

            fitted = fit_calibration(val_y, val_pred)
            bundle.calibration = fitted | {"fitted_on": "out-of-fold validation predictions"}
        if is_rank_zero():
            save_bundle(bundle, bundle_dir)
    result = ExperimentResult(
        name=config.name,
        task=config.task_type,
        test_metrics=test_metrics,
        val_metrics=val_metrics,
        threshold=threshold,
        bundle_dir=bundle_dir,
        seconds=time.perf_counter() - start,
        extra={"config": config.to_dict()},
    )
    if not is_rank_zero():
        return result
    (out_dir / "results.json").write_text(json.dumps(result.to_dict(), indent=2))
    if test is not None:
        frame = pd.DataFrame(
            {"subject_id": test.subject_ids, "y_true": test.y, "y_pred": test_pred}
        )
        frame.to_csv(out_dir / "test_predictions.csv", index=False)
    return result


def is_rank_zero() -> bool:
    """True unless this is a ``torchrun`` process of rank > 0, the ones that write nothing.

    Reads ``RANK`` without importing torch, which baseline experiments never need.
    """
    return os.environ.get("RANK", "0") == "0"


def _listed(metrics: dict[str, tuple[float, float, float]]) -> dict[str, list[float]]:
    return {k: [float(x) for x in v] for k, v in metrics.items()}


def _score(config, val_y, val_pred, test, test_pred):
    """Threshold and validation metrics from (out-of-fold) validation predictions; test once."""
    from medseq.evaluation import (
        binary_metrics,
        metrics_with_ci,
        regression_metrics,
        select_threshold,
    )

    ev = config.evaluate
    if config.task_type == "binary":
        threshold = float(
            select_threshold(val_y, val_pred, method=ev.threshold, target=ev.threshold_target)
        )
        val_metrics = binary_metrics(val_y, val_pred, threshold=threshold)
    else:
        threshold = None
        val_metrics = regression_metrics(val_y, val_pred)
    if test is None:
        return threshold, {k: float(v) for k, v in val_metrics.items()}, {}
    test_metrics = metrics_with_ci(
        test.y,
        test_pred,
        task=config.task_type,
        threshold=threshold,
        n_boot=ev.n_boot,
        alpha=ev.ci_alpha,
        random_state=0,
    )
    return threshold, {k: float(v) for k, v in val_metrics.items()}, test_metrics


def evaluate_bundle(bundle_dir: str | Path, data_path: str | Path, *, n_boot: int = 1000):
    """Metrics with CIs of a saved bundle on another labelled set, at the bundle's threshold."""
    from medseq.bundle import load_bundle
    from medseq.evaluation import metrics_with_ci

    bundle = load_bundle(bundle_dir)
    prov = bundle.provenance
    data = read_set(prov.get("dataset", "physionet2012"), data_path)
    labels = labels_for(prov.get("task", "mortality"), data)
    ids = labels.index.to_numpy()
    pred = bundle.predict(data.events, data.static, ids)
    return metrics_with_ci(
        labels.to_numpy(dtype=np.float32),
        pred,
        task=bundle.task,
        threshold=bundle.threshold,
        n_boot=n_boot,
        random_state=0,
    )


def predict_file(bundle_dir: str | Path, data_path: str | Path) -> pd.DataFrame:
    """Predictions of a saved bundle for every subject in ``data_path``."""
    from medseq.bundle import load_bundle

    bundle = load_bundle(bundle_dir)
    data = read_set(bundle.provenance.get("dataset", "physionet2012"), data_path)
    ids = data.static.index.to_numpy()
    pred = bundle.predict(data.events, data.static, ids)
    frame = pd.DataFrame({"subject_id": ids})
    if bundle.task == "binary":
        frame["risk"] = pred
        frame["decision"] = (pred >= bundle.threshold).astype(int)
    else:
        frame["prediction"] = pred
    return frame
