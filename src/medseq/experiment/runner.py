"""Run an experiment end to end: read, split, featurise, train, select, test once, save.

Model selection (early stopping, decision threshold) sees the validation split of the
training set only; the test set is predicted once, after everything is fixed.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from medseq.datasets.registry import DatasetSpec, get_dataset
from medseq.evaluation.conformal import fit_conformal
from medseq.evaluation.scoring import (
    class_labels,
    metric_table,
    metrics_with_cis,
    per_fold_summary,
    sample_groups,
    with_extras,
)
from medseq.evaluation.selective import with_default_abstention
from medseq.experiment.baselines import fit_baseline
from medseq.experiment.config import ExperimentConfig
from medseq.experiment.data import (
    Fold,
    LabelledSet,
    default_split_ids,
    file_sha256,
    folds_from_ids,
    hold_out_early_stop,
    read_labelled,
    resolve_data_path,
)
from medseq.predictions import sample_keys, with_sample_keys
from medseq.training.distributed import is_rank_zero

if TYPE_CHECKING:
    from medseq.evaluation.bootstrap import CI

logger = logging.getLogger(__name__)


@dataclass
class ExperimentResult:
    """What an experiment produced: test metrics with CIs, validation metrics, where it saved."""

    name: str
    task: str
    test_metrics: dict[str, CI]
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


def _read_labelled(spec: DatasetSpec, config: ExperimentConfig, path: str):
    data, labels = read_labelled(spec, config, path)
    report = getattr(data, "report", None)
    if report is not None and hasattr(report, "summary"):
        logger.info("%s: %s", path, report.summary())
    return data, labels


def _load_splits(config: ExperimentConfig) -> tuple[list[Fold], LabelledSet | None]:
    spec = get_dataset(config.data.dataset)
    data, labels = _read_labelled(spec, config, config.data.train)
    if config.data.protocol:
        split = spec.protocol(config.data.protocol)(config.data, data, labels)
    else:
        split = default_split_ids(config.data, labels)
    if config.data.inner_val_fraction > 0:
        groups = None if spec.groups is None else spec.groups(config.data.task, data, labels.index)
        split = hold_out_early_stop(
            split, labels, fraction=config.data.inner_val_fraction,
            seed=config.data.split_seed, groups=groups,
        )  # fmt: skip
    elif len(split.folds) > 1:
        logger.info(
            "members early-stop on the fold they are scored on: the out-of-fold metrics are "
            "optimistic ([data] inner_val_fraction holds out a separate part)"
        )
    folds = folds_from_ids(data, labels, split)
    if config.data.protocol:
        if split.test is None or not config.data.score_test:
            if split.test is not None:
                logger.info("score_test = false: a selection run, the test part is not touched")
            return folds, None
        return folds, LabelledSet.select(data, labels, split.test)
    if not config.data.test or not config.data.score_test:
        logger.info("no test set scored: a selection run, validation metrics only")
        return folds, None
    test_data, test_labels = _read_labelled(spec, config, config.data.test)
    return folds, LabelledSet.select(test_data, test_labels, test_labels.index.to_numpy())


def _provenance(
    config: ExperimentConfig, folds: list[Fold], test: LabelledSet | None
) -> dict[str, Any]:
    paths = (
        {"train": config.data.train, "test": config.data.test}
        if test and config.data.test
        else {"train": config.data.train}
    )
    request_state = get_dataset(config.data.dataset).request_state
    return {
        "dataset": config.data.dataset,
        "task": config.data.task,
        **({"task_definition": config.task} if config.task else {}),
        # what the REST parser needs of the training data (e.g. a flat export's mapping)
        **({"request_state": request_state(folds[0].train.data)} if request_state else {}),
        "files": {
            role: {"path": str(p), "sha256": file_sha256(resolve_data_path(p))}
            for role, p in paths.items()
        },
        "n_subjects": {
            "train": len(folds[0].train.subject_ids),
            "val": len(folds[0].val.subject_ids),
            "early_stop": 0
            if folds[0].early_stop is None
            else len(folds[0].early_stop.subject_ids),
            "test": len(test.subject_ids) if test else 0,
        },
        "split": {
            "protocol": config.data.protocol,
            "val_fraction": config.data.val_fraction,
            "cv_folds": config.data.cv_folds,
            "inner_val_fraction": config.data.inner_val_fraction,
            "split_seed": config.data.split_seed,
            "max_subjects": config.data.max_subjects,
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
    class_names = None
    if config.model is None:
        val_y, val_pred, test_pred = fit_baseline(config, folds, test)
        bundle_dir = None
        if config.task_type in ("multiclass", "multilabel"):  # name the metric table's classes
            class_names = _class_names(config, folds[0].train.data)
    else:
        from medseq.experiment.neural import train_bundle

        bundle, val_y, val_pred, test_pred = train_bundle(
            config, folds, test, out_dir, resume=resume, progress=progress
        )
        bundle.provenance = _provenance(config, folds, test)
        streaming = get_dataset(config.data.dataset).signal_streaming
        if streaming is not None:  # the model's input rate and lead, for the edge path
            bundle.provenance["signal"] = streaming.input_signal(bundle.featurizer.state_dict())
        bundle_dir = str(out_dir / "bundle")
        class_names = bundle.class_names
    fold_sizes = [len(fold.val.subject_ids) for fold in folds]
    scored = _score(config, class_names, val_y, val_pred, test, test_pred, fold_sizes)
    threshold, val_metrics, test_metrics = scored.threshold, scored.val, scored.test
    if config.model is not None and config.baseline is not None:
        scored.extra["baseline"] = _side_baseline(config, folds, test, class_names, fold_sizes)
    if config.model is not None:
        from medseq.bundle import save_bundle

        bundle.threshold = threshold
        bundle.metrics = {"validation": val_metrics, "test": _listed(test_metrics)}
        if "val_fold_mean_sd" in scored.extra:  # the spread behind the pooled figure
            bundle.metrics["validation_fold_mean_sd"] = scored.extra["val_fold_mean_sd"]
        if config.task_type == "binary":
            from medseq.evaluation import fit_calibration

            fitted = fit_calibration(val_y, val_pred)
            bundle.calibration = fitted | {"fitted_on": "out-of-fold validation predictions"}
        bundle.conformal = with_default_abstention(fit_conformal(config.task_type, val_y, val_pred))
        if is_rank_zero() and bundle_dir is not None:  # set whenever there is no baseline
            save_bundle(bundle, bundle_dir)
    result = ExperimentResult(
        name=config.name,
        task=config.task_type,
        test_metrics=test_metrics,
        val_metrics=val_metrics,
        threshold=threshold,
        bundle_dir=bundle_dir,
        seconds=time.perf_counter() - start,
        extra={"config": config.to_dict(), **scored.extra},
    )
    if not is_rank_zero():
        return result
    (out_dir / "results.json").write_text(json.dumps(result.to_dict(), indent=2))
    # the out-of-fold validation predictions, per subject with its fold: what a replay
    # of held-out training subjects needs (benchmarks/drift_replay.py) without retraining
    val_ids = np.concatenate([fold.val.subject_ids for fold in folds])
    if len(val_ids) == len(val_pred):
        frame = _predictions_frame(val_ids, val_y, val_pred, class_names)
        frame.insert(1, "fold", np.repeat(np.arange(len(folds)), fold_sizes))
        keys = sample_keys(
            get_dataset(config.data.dataset), config.data.task, folds[0].val.data, val_ids
        )
        with_sample_keys(frame, keys).to_csv(out_dir / "val_predictions.csv", index=False)
    if test is not None:
        frame = _predictions_frame(test.subject_ids, test.y, test_pred, class_names)
        keys = sample_keys(
            get_dataset(config.data.dataset), config.data.task, test.data, test.subject_ids
        )
        with_sample_keys(frame, keys).to_csv(out_dir / "test_predictions.csv", index=False)
    return result


def _side_baseline(config, folds, test, class_names, fold_sizes) -> dict[str, Any]:
    """The ``[baseline]`` of a config that also has a ``[model]``: fitted on the same folds
    (and tested on the same test part), scored by the same metrics, so that one run says
    where the neural model stands."""
    start = time.perf_counter()
    val_y, val_pred, test_pred = fit_baseline(config, folds, test)
    scored = _score(config, class_names, val_y, val_pred, test, test_pred, fold_sizes)
    out = {
        "kind": config.baseline.kind,
        "features": config.baseline.features,
        "threshold": scored.threshold,
        "val_metrics": scored.val,
        "test_metrics": _listed(scored.test),
        "seconds": time.perf_counter() - start,
    }
    for key in ("val_fold_mean_sd", "val_folds"):
        if key in scored.extra:
            out[key] = scored.extra[key]
    return out


def _class_names(config: ExperimentConfig, data: Any) -> list[str] | None:
    spec = get_dataset(config.data.dataset)
    return None if spec.class_names is None else list(spec.class_names(config.data.task, data))


def _predictions_frame(ids, y, pred, class_names) -> pd.DataFrame:
    """One row per sample: its label(s) and prediction(s); per-step outputs are omitted."""
    frame = pd.DataFrame({"subject_id": ids})
    if y.ndim == 1 and pred.ndim == 1:
        frame["y_true"], frame["y_pred"] = y, pred
        return frame
    names = class_labels(class_names, pred.shape[-1])
    if y.ndim == 1 and pred.ndim == 2:  # multiclass: the label and each class probability
        columns = {"y_true": y} | {f"p_{name}": pred[:, k] for k, name in enumerate(names)}
    elif y.ndim == 2 and pred.ndim == 2 and y.shape == pred.shape:  # multilabel
        columns = {}
        for k, name in enumerate(names):
            columns |= {f"y_{name}": y[:, k], f"p_{name}": pred[:, k]}
    else:
        return frame
    return pd.concat([frame, pd.DataFrame(columns)], axis=1)


def _listed(metrics: dict[str, CI]) -> dict[str, list[float]]:
    return {k: [float(x) for x in v] for k, v in metrics.items()}


@dataclass
class _Scores:
    threshold: float | None
    val: dict[str, float]
    test: dict[str, CI]
    extra: dict[str, Any] = field(default_factory=dict)


def _score(config, class_names, val_y, val_pred, test, test_pred, fold_sizes=()) -> _Scores:
    """Threshold and validation metrics from (out-of-fold) validation predictions; test once.

    With several folds, each fold's metrics (at the pooled threshold) and their mean and sd
    go into the extras as well.
    """
    from medseq.evaluation import binary_metrics, regression_metrics, select_threshold
    from medseq.evaluation.multi import confusion

    spec, task, task_type = get_dataset(config.data.dataset), config.data.task, config.task_type
    ev, extra = config.evaluate, {}
    threshold = None
    if task_type in ("multiclass", "multilabel"):
        names = class_labels(class_names, val_pred.shape[-1])
        if spec.alarm_threshold is not None:
            threshold = float(spec.alarm_threshold(task, val_y, val_pred))
        table = metric_table(spec, task, task_type, names, alarm=threshold)
        extra["class_names"] = names
    elif task_type == "binary":
        threshold = float(
            select_threshold(val_y, val_pred, method=ev.threshold, target=ev.threshold_target)
        )
        table = functools.partial(with_extras, spec, task, binary_metrics, threshold=threshold)
    else:
        table = functools.partial(with_extras, spec, task, regression_metrics)
    val_metrics = {k: float(v) for k, v in table(val_y, val_pred).items()}
    if len(fold_sizes) > 1:
        extra |= per_fold_summary(table, val_y, val_pred, fold_sizes)
    multiclass = task_type == "multiclass"
    if multiclass:
        extra["val_confusion"] = confusion(val_y, val_pred, len(extra["class_names"])).tolist()
    if test is None:
        return _Scores(threshold, val_metrics, {}, extra)
    groups = sample_groups(spec, task, test.data, test.subject_ids)  # resample patients
    test_metrics = metrics_with_cis(
        spec, task, task_type, test.y, test_pred, threshold=threshold,
        class_names=class_names, n_boot=ev.n_boot, alpha=ev.ci_alpha, groups=groups,
    )  # fmt: skip
    if multiclass:
        extra["test_confusion"] = confusion(test.y, test_pred, len(extra["class_names"])).tolist()
    return _Scores(threshold, val_metrics, test_metrics, extra)
