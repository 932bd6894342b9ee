"""The metric tables of a task, shared by the runner, ``medseq evaluate`` and the report.

Which metrics a task gets depends on its type; the dataset's spec may add its own (the
challenge F1 of CinC 2017, recall@k of the history tasks). One place builds the table so the
training run, a later evaluation and the report agree to the last digit.
"""

from __future__ import annotations

import functools
import itertools
from typing import TYPE_CHECKING, Any

import numpy as np

from medseq.datasets.registry import DatasetSpec

if TYPE_CHECKING:
    from medseq.evaluation.bootstrap import CI


def class_labels(class_names: list[str] | None, n: int) -> list[str]:
    """The bundle's class or label names, or ``"0" .. "n-1"`` when it has none."""
    return list(class_names) if class_names else [str(k) for k in range(n)]


def metric_table(
    spec: DatasetSpec,
    task: str,
    task_type: str,
    class_names: list[str],
    alarm: float | None = None,
):
    """``(y, prob) -> metrics`` of a multiclass/multilabel task, with the dataset's extras.

    ``alarm`` is the threshold the spec's ``alarm_threshold`` chose on validation data; the
    dataset's own metrics are then taken at it.
    """
    from medseq.evaluation.multi import multiclass_metrics, multilabel_metrics

    base = multiclass_metrics if task_type == "multiclass" else multilabel_metrics
    extras = dataset_metrics(spec, task, alarm)

    def table(y: np.ndarray, prob: np.ndarray) -> dict[str, float]:
        out = dict(base(y, prob, class_names))
        return out | extras(y, prob) if extras is not None else out

    return table


def dataset_metrics(spec: DatasetSpec, task: str, alarm: float | None = None):
    """``(y, pred) -> metrics`` of the dataset's own figures, or None when it has none.

    A spec with an ``alarm_threshold`` rule gets the chosen threshold (None before one is
    chosen, and the spec then says which default it used).
    """
    if spec.metrics is None:
        return None
    if spec.alarm_threshold is not None:
        return functools.partial(spec.metrics, task, threshold=alarm)
    return functools.partial(spec.metrics, task)


def with_extras(spec, task, metrics, y, pred, *args, **kwargs) -> dict[str, float]:
    """``metrics(y, pred, ...)`` plus the dataset's own metrics of the task."""
    out = dict(metrics(y, pred, *args, **kwargs))
    extras = dataset_metrics(spec, task, kwargs.get("threshold"))
    return out | extras(y, pred) if extras is not None else out


def metrics_with_cis(
    spec: DatasetSpec,
    task: str,
    task_type: str,
    y: np.ndarray,
    pred: np.ndarray,
    *,
    threshold: float | None = None,
    class_names: list[str] | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    random_state: int = 0,
    groups: np.ndarray | None = None,
) -> dict[str, CI]:
    """The test table of any task: its metrics with bootstrap CIs, plus the dataset's own.

    One function for the training run, ``medseq evaluate`` and the report, so the three
    agree to the last digit. ``groups`` (the patient of each sample, :func:`sample_groups`)
    makes the resamples draw patients, not samples: several samples of one patient are not
    independent, and resampling them one by one gives too narrow an interval.
    """
    from medseq.evaluation import metrics_with_ci
    from medseq.evaluation.multi import bootstrap_table

    if task_type in ("multiclass", "multilabel"):
        names = class_labels(class_names, pred.shape[-1])
        table = metric_table(spec, task, task_type, names, alarm=threshold)
        return bootstrap_table(
            table, y, pred, n_boot=n_boot, alpha=alpha, random_state=random_state, groups=groups
        )
    out = metrics_with_ci(
        y, pred, task=task_type, threshold=threshold, n_boot=n_boot, alpha=alpha,
        random_state=random_state, groups=groups,
    )  # fmt: skip
    extras = dataset_metrics(spec, task, threshold)
    if extras is not None:
        out |= bootstrap_table(
            extras, y, pred, n_boot=n_boot, alpha=alpha, random_state=random_state, groups=groups
        )
    return out


def sample_groups(spec: DatasetSpec, task: str, data: Any, ids: np.ndarray) -> np.ndarray | None:
    """The patient (record) of each sample of ``ids`` by the spec's ``groups`` part, or
    None when the spec has none or every sample is its own patient (the per-sample
    bootstrap is then the same)."""
    if spec.groups is None:
        return None
    groups = np.asarray(spec.groups(task, data, np.asarray(ids)))
    return None if len(np.unique(groups)) == len(groups) else groups


def per_fold_summary(table, y, pred, fold_sizes: list[int]) -> dict[str, Any]:
    """Each fold's validation metrics and their mean and sample sd over folds.

    The pooled table hides how much the estimate moves from fold to fold; this is that
    spread. A fold whose metrics cannot be computed (e.g. one class only) is reported with
    its error and left out of the summary.
    """
    bounds = np.cumsum([0, *fold_sizes])
    folds: list[dict[str, Any]] = []
    for start, stop in itertools.pairwise(bounds):
        try:
            folds.append({k: float(v) for k, v in table(y[start:stop], pred[start:stop]).items()})
        except ValueError as err:
            folds.append({"error": str(err)})
    scored = [f for f in folds if "error" not in f]
    summary = {}
    for name in scored[0] if scored else []:
        values = np.array([f[name] for f in scored], dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size:
            sd = float(values.std(ddof=1)) if values.size > 1 else float("nan")
            summary[name] = [float(values.mean()), sd]
    return {"val_folds": folds, "val_fold_mean_sd": summary}
