"""Report sections for bundles of every modality: ECG rhythms, visit histories, molecules,
image volumes, and multiclass or multilabel tasks of any dataset.

The time-grid report (:mod:`medseq.report.sections`, :mod:`medseq.report.insight`) adds
sections that only a time grid of named clinical variables supports (the featurizer's
description says so, :func:`time_grid_gap`): missingness per variable, the subgroups of the
dataset spec and integrated gradients per variable and hour.
For other data the report keeps what is defined for any model: metrics with bootstrap
CIs on each set, the curves, the confusion matrix, calibration (binary) and the model
card; the modality's own explanations come from ``medseq explain``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medseq.evaluation.multi import confusion, flatten_steps
from medseq.explain.plotting import figure_png, pyplot
from medseq.features import base
from medseq.report.datasets import EvaluatedSet

MULTI_TASKS = ("multiclass", "multilabel")


def time_grid_gap(bundle) -> str | None:
    """Why the full time-grid report (missingness per variable, subgroups, integrated
    gradients per variable and hour) does not apply to the bundle; None when it does.

    Asked of the featurizer's description (:func:`medseq.features.base.time_grid_gap`),
    never of its class.
    """
    return base.time_grid_gap(base.describe(bundle.featurizer))


def has_time_grid(bundle) -> bool:
    """True when the bundle reads a time grid of named variables (see :func:`time_grid_gap`)."""
    return time_grid_gap(bundle) is None


def _class_counts(bundle, ev: EvaluatedSet, names: list[str]) -> dict[str, int]:
    if bundle.task == "multilabel":
        return {name: int(np.nansum(ev.y[:, k])) for k, name in enumerate(names)}
    y, _ = flatten_steps(ev.y, ev.risk)
    return {name: int((y == k).sum()) for k, name in enumerate(names)}


def multi_set_metrics(bundle, ev: EvaluatedSet, *, n_boot: int, random_state: int = 0):
    """The training run's multiclass/multilabel metric table with bootstrap CIs."""
    from medseq.evaluation.scoring import class_labels, metrics_with_cis

    names = class_labels(bundle.class_names, ev.risk.shape[-1])
    cis = metrics_with_cis(
        bundle.spec(), bundle.dataset_task, bundle.task, ev.y, ev.risk,
        class_names=names, n_boot=n_boot, random_state=random_state, groups=ev.groups,
    )  # fmt: skip
    return {
        "name": ev.name,
        "path": ev.path,
        "sha256": ev.sha256,
        "n": len(ev.y),
        "class_counts": _class_counts(bundle, ev, names),
        "metrics": {k: [float(x) for x in v] for k, v in cis.items()},
    }


def confusion_figure(matrix: np.ndarray, names: list[str], title: str) -> bytes:
    """Counts and row percentages (sensitivity on the diagonal) of a K-class matrix."""
    plt = pyplot()
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = 1.2 + 0.9 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        colour = "white" if share[i, j] > 0.6 else "black"
        ax.text(
            j,
            i,
            f"{count}\n{100 * share[i, j]:.0f} %",
            ha="center",
            va="center",
            color=colour,
            fontsize=8,
        )
    ticks = np.arange(len(names))
    ax.set_xticks(ticks, names)
    ax.set_yticks(ticks, names)
    ax.set(xlabel="predicted class (argmax)", ylabel="true class")
    ax.set_title(title, loc="left")
    ax.grid(False)
    fig.tight_layout()
    return figure_png(fig)


def one_vs_rest_roc_figure(ev: EvaluatedSet, names: list[str]) -> bytes:
    """ROC curve of each class against the rest (multiclass) or of each label."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.0))
    if ev.y.ndim == 2 and ev.risk.ndim == 2 and ev.y.shape == ev.risk.shape:
        columns = [(ev.y[:, k], ev.risk[:, k]) for k in range(len(names))]
    else:
        y, p = flatten_steps(ev.y, ev.risk)
        columns = [((y == k).astype(float), p[:, k]) for k in range(len(names))]
    for k, (name, (truth, score)) in enumerate(zip(names, columns, strict=True)):
        known = ~np.isnan(truth)
        truth, score = truth[known], score[known]
        if not 0 < truth.sum() < len(truth):
            continue
        fpr, tpr, _ = roc_curve(truth, score)
        auc = roc_auc_score(truth, score)
        ax.plot(fpr, tpr, color=f"C{k % 10}", lw=1.2, label=f"{name} (AUROC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1, label="chance")
    ax.set(xlabel="1 - specificity (false positive rate)", ylabel="sensitivity (TPR)")
    ax.set(xlim=(0, 1), ylim=(0, 1.01))
    ax.set_title(f"One-vs-rest ROC curves, {ev.name}", loc="left")
    ax.legend(frameon=False, loc="lower right", fontsize=7)
    fig.tight_layout()
    return figure_png(fig)


def multi_figures(bundle, sets: dict[str, EvaluatedSet]) -> dict[str, bytes]:
    """Confusion matrices (multiclass) and per-class/label ROC curves of the internal set."""
    internal = sets["internal"]
    from medseq.evaluation.scoring import class_labels

    names = class_labels(bundle.class_names, internal.risk.shape[-1])
    figs = {"roc_ovr": one_vs_rest_roc_figure(internal, names)}
    if bundle.task == "multiclass":
        for role, ev in sets.items():
            matrix = confusion(ev.y, ev.risk, len(names))
            figs[f"confusion_{role}"] = confusion_figure(matrix, names, f"Confusion, {ev.name}")
    return figs


def evaluate_sets(bundle, sets: dict[str, EvaluatedSet], config) -> tuple[dict[str, Any], dict]:
    """Every set's metrics and the performance figures of a binary or multi-task bundle."""
    from medseq.report import sections

    if bundle.task in MULTI_TASKS:
        summaries = {
            role: multi_set_metrics(
                bundle, ev, n_boot=config.n_boot, random_state=config.random_state
            )
            for role, ev in sets.items()
        }
        return summaries, multi_figures(bundle, sets)
    summaries = {
        role: sections.set_metrics(
            bundle,
            ev,
            n_boot=config.n_boot,
            n_bins=config.n_bins,
            random_state=config.random_state,
        )
        for role, ev in sets.items()
    }
    return summaries, sections.performance_figures(bundle, sets, config.n_bins)
