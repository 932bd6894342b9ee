"""Figures of the evaluation report, each returned as PNG bytes.

Every figure has labelled axes with units, a legend naming each curve with its summary
number, and a size that reads at the HTML page's width (see
:mod:`medseq.explain.plotting`). Curves of several sets (internal test, external) share
axes, so drift is read off one picture.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from medseq.evaluation.calibration import expected_calibration_error, reliability_curve
from medseq.explain.plotting import figure_png, pyplot

Curves = Mapping[str, tuple[np.ndarray, np.ndarray]]  # name -> (y_true, y_prob)


def roc_pr_figure(curves: Curves) -> bytes:
    """ROC and precision-recall curves side by side, one line per set."""
    plt = pyplot()
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(10.0, 4.4))
    for i, (name, (y, p)) in enumerate(curves.items()):
        fpr, tpr, _ = roc_curve(y, p)
        roc_ax.plot(fpr, tpr, color=f"C{i}", label=f"{name} (AUROC {roc_auc_score(y, p):.3f})")
        precision, recall, _ = precision_recall_curve(y, p)
        ap = average_precision_score(y, p)
        pr_ax.plot(recall, precision, color=f"C{i}", label=f"{name} (AUPRC {ap:.3f})")
        pr_ax.axhline(np.mean(y), color=f"C{i}", ls=":", lw=1, label=f"{name} prevalence")
    roc_ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1, label="chance")
    roc_ax.set(xlabel="1 - specificity (false positive rate)", ylabel="sensitivity (TPR)")
    roc_ax.set_title("ROC curve", loc="left")
    pr_ax.set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", ylim=(0, 1.02))
    pr_ax.set_title("Precision-recall curve", loc="left")
    for ax in (roc_ax, pr_ax):
        ax.set_xlim(0, 1)
        ax.legend(frameon=False, loc="lower right" if ax is roc_ax else "upper right")
    fig.tight_layout()
    return figure_png(fig)


def reliability_figure(curves: Curves, *, n_bins: int = 10) -> bytes:
    """Reliability diagram with 95 % intervals per bin, and the risk histogram below it."""
    plt = pyplot()
    fig, (ax, hist_ax) = plt.subplots(
        2, 1, figsize=(6.4, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1, label="perfect calibration")
    for i, (name, (y, p)) in enumerate(curves.items()):
        c = reliability_curve(y, p, n_bins=n_bins, strategy="quantile")
        ece = expected_calibration_error(y, p, n_bins=n_bins)
        yerr = np.vstack([c.observed - c.lo, c.hi - c.observed])
        ax.errorbar(
            c.mean_predicted,
            c.observed,
            yerr=yerr,
            marker="o",
            ms=4,
            capsize=2,
            color=f"C{i}",
            label=f"{name} (ECE {ece:.3f})",
        )
        hist_ax.hist(p, bins=np.linspace(0, 1, 41), color=f"C{i}", alpha=0.5, label=name)
    top = max(float(np.max(p)) for _, p in curves.values())
    limit = min(1.0, max(0.2, top * 1.05))
    ax.set(xlim=(0, limit), ylim=(0, limit), ylabel="observed frequency of the outcome")
    ax.set_title(f"Calibration (reliability diagram, {n_bins} equal-count bins)", loc="left")
    ax.legend(frameon=False, loc="upper left")
    hist_ax.set(xlabel="predicted risk", ylabel="stays")
    fig.tight_layout()
    return figure_png(fig)


def confusion_figure(y_true: np.ndarray, y_prob: np.ndarray, threshold: float) -> bytes:
    """Confusion matrix at the bundle's threshold, with counts and row percentages."""
    plt = pyplot()
    matrix = confusion_matrix(y_true, (y_prob >= threshold).astype(int), labels=[0, 1])
    share = matrix / matrix.sum(axis=1, keepdims=True)
    fig, ax = plt.subplots(figsize=(4.8, 4.0))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        colour = "white" if share[i, j] > 0.6 else "black"
        ax.text(
            j, i, f"{count}\n({100 * share[i, j]:.1f} %)", ha="center", va="center", color=colour
        )
    ax.set_xticks([0, 1], ["predicted negative", "predicted positive"])
    ax.set_yticks([0, 1], ["actual negative", "actual positive"])
    ax.set_title(f"Confusion matrix at threshold {threshold:.3f}", loc="left")
    ax.grid(False)
    return figure_png(fig)


def decision_curve_figure(frames: Mapping[str, pd.DataFrame]) -> bytes:
    """Net benefit of the model (one line per set) against treat-all and treat-none."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    highest = 0.0
    for i, (name, frame) in enumerate(frames.items()):
        pct = frame["threshold"] * 100
        ax.plot(pct, frame["model"], color=f"C{i}", label=f"model, {name}")
        ax.plot(pct, frame["treat_all"], color=f"C{i}", ls=":", label=f"treat all, {name}")
        highest = max(highest, float(frame[["model", "treat_all"]].max().max()))
    first = next(iter(frames.values()))
    ax.plot(first["threshold"] * 100, first["treat_none"], color="k", lw=1, label="treat none")
    ax.set(xlabel="threshold probability (%)", ylabel="net benefit (true positives per stay)")
    ax.set_ylim(-0.02, max(highest * 1.1, 0.02))
    ax.set_title("Decision curve", loc="left")
    ax.legend(frameon=False, loc="upper right")
    return figure_png(fig)


def subgroup_figure(table: pd.DataFrame, overall: float, metric: str = "auroc") -> bytes:
    """Forest plot of one metric by subgroup, with the overall value as a reference line."""
    plt = pyplot()
    rows = table[(table["metric"] == metric) & table["value"].notna()]
    labels = [
        f"{a}: {g} (n={n})"
        for a, g, n in zip(rows["attribute"], rows["group"], rows["n"], strict=True)
    ]
    fig, ax = plt.subplots(figsize=(7.0, 0.36 * len(rows) + 1.4))
    pos = np.arange(len(rows))[::-1]
    colours = np.where(rows["flag"].to_numpy(dtype=bool), "C3", "C0")
    err = np.vstack([rows["value"] - rows["lo"], rows["hi"] - rows["value"]])
    for k in range(len(rows)):
        ax.errorbar(
            rows["value"].iloc[k],
            pos[k],
            xerr=err[:, k : k + 1],
            fmt="o",
            color=colours[k],
            capsize=3,
        )
    ax.axvline(overall, color="0.4", ls="--", lw=1, label=f"all stays ({overall:.3f})")
    ax.set_yticks(pos, labels)
    ax.set_xlabel(f"{metric.upper()} with 95 % CI (red: differs from the rest)")
    ax.set_title(f"{metric.upper()} by subgroup", loc="left")
    ax.legend(frameon=False, loc="lower right")
    ax.grid(axis="y", visible=False)
    return figure_png(fig)


def missingness_figure(frames: Mapping[str, pd.DataFrame], top_n: int = 37) -> bytes:
    """Share of stays in which each variable is never observed, one bar per set."""
    plt = pyplot()
    names: Sequence[str] = list(frames)
    order = frames[names[0]]["never_observed"].sort_values(ascending=False).index[:top_n]
    fig, ax = plt.subplots(figsize=(7.5, 0.22 * len(order) * max(1, len(names) * 0.7) + 1.4))
    height = 0.8 / len(names)
    base = np.arange(len(order))[::-1]
    for i, name in enumerate(names):
        values = frames[name]["never_observed"].reindex(order).to_numpy()
        ax.barh(
            base + (len(names) / 2 - i - 0.5) * height,
            values,
            height=height,
            color=f"C{i}",
            label=name,
        )
    ax.set_yticks(base, list(order))
    ax.set_xlabel("stays with no observation in the window (%)")
    ax.set_xlim(0, 100)
    ax.set_title("Missingness per variable", loc="left")
    ax.legend(frameon=False, loc="lower right")
    ax.grid(axis="y", visible=False)
    return figure_png(fig)
