"""Figures of the per-step explanations: steps × named features, one step's past, tokens.

All three share one scale per figure (log-odds of the explained class, signed: red raises
it, blue lowers it) and put the ranking a clinician reads first (top steps, top features,
top tokens) in the same order as the printed summary.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medseq.explain.plotting import figure_png, pyplot

N_ROWS = 8
RAISE, LOWER = "#d95f02", "#1b9e77"


def _edges(x: np.ndarray) -> np.ndarray:
    """Cell edges centred on the step positions ``x`` (midpoints, extrapolated at the ends)."""
    if len(x) == 1:
        return np.array([x[0] - 0.5, x[0] + 0.5])
    mid = (x[1:] + x[:-1]) / 2
    return np.r_[2 * x[0] - mid[0], mid, 2 * x[-1] - mid[-1]]


def _heat(ax, cells: np.ndarray, rows: list[str], x: np.ndarray) -> Any:
    """A signed heatmap of ``cells`` ``(R, T)`` with cells centred on step positions ``x``."""
    limit = float(np.max(np.abs(cells), initial=0.0)) or 1.0
    image = ax.pcolormesh(_edges(x), np.arange(len(rows) + 1) - 0.5, cells, cmap="RdBu_r",
                          vmin=-limit, vmax=limit, shading="flat")  # fmt: skip
    ax.set_yticks(range(len(rows)), rows)
    ax.invert_yaxis()
    ax.grid(False)
    return image


def feature_sequence_figure(expl: Any) -> bytes:
    """Per-step attribution against time (top steps marked), the top features' cells over the
    steps, and the features' summed attributions, on one log-odds scale."""
    plt = pyplot()
    per_step, per_feature = expl.per_step(), expl.per_feature()
    timed = expl.step_times_s is not None
    x = expl.step_times_s if timed else np.arange(len(per_step), dtype=float)
    unit = "time in the recording (s)" if timed else expl.step
    top = np.argsort(-np.abs(per_feature), kind="stable")[:N_ROWS]
    fig = plt.figure(figsize=(11, 6.2))
    grid = fig.add_gridspec(2, 4, width_ratios=[3, 0.08, 0.4, 1.1], height_ratios=[1, 1.4],
                            wspace=0.05, hspace=0.3)  # fmt: skip
    steps = fig.add_subplot(grid[0, 0])
    heat = fig.add_subplot(grid[1, 0], sharex=steps)
    bars = fig.add_subplot(grid[1, 3], sharey=heat)
    width = np.diff(x).min() * 0.8 if len(x) > 1 else 0.8
    steps.bar(x, per_step, width=width, color=[RAISE if v > 0 else LOWER for v in per_step])
    for s in expl.top_steps(3):
        steps.annotate(f"{expl.step} {s}", (x[s], per_step[s]), fontsize=8, ha="center",
                       va="bottom" if per_step[s] > 0 else "top")  # fmt: skip
    steps.axhline(0.0, color="0.3", lw=0.8)
    steps.set_ylabel(f"per {expl.step}\n(log-odds)")
    steps.set_title(f"Sample {expl.sample_id}: {expl.explained} = {expl.probability:.2f}"
                    f" (label {expl.label}); integrated gradients", loc="left")  # fmt: skip
    names = [expl.feature_names[i] for i in top]
    image = _heat(heat, expl.cells[:, top].T, names, x)
    heat.set_xlabel(unit)
    fig.colorbar(image, cax=fig.add_subplot(grid[1, 1]), label="log-odds per cell")
    colours = [RAISE if v > 0 else LOWER for v in per_feature[top]]
    bars.barh(range(len(top)), per_feature[top], color=colours)
    bars.tick_params(labelleft=False)
    bars.axvline(0.0, color="0.3", lw=0.8)
    bars.set_xlabel(f"summed over {expl.step}s")
    return figure_png(fig)


def target_step_figure(target: Any, column_names: list[str], unit: str) -> bytes:
    """The explained step's attributions over the steps × the top columns; the steps after
    it are shaded (a causal model gives them exactly 0)."""
    plt = pyplot()
    cells = target.cells  # (T, F)
    per_column = np.abs(cells).sum(axis=0)
    top = np.argsort(-per_column, kind="stable")[:N_ROWS]
    x = np.arange(len(cells), dtype=float)
    fig = plt.figure(figsize=(11, 5.6))
    grid = fig.add_gridspec(2, 2, width_ratios=[1, 0.02], height_ratios=[1, 1.6], wspace=0.03)
    line = fig.add_subplot(grid[0, 0])
    heat = fig.add_subplot(grid[1, 0], sharex=line)
    line.bar(x, cells.sum(axis=1), width=0.8,
             color=[RAISE if v > 0 else LOWER for v in cells.sum(axis=1)])  # fmt: skip
    line.axvline(target.step, color="k", lw=1.0, ls="--")
    line.set_ylabel("per step\n(log-odds)")
    line.set_title(f"Sample {target.sample_id}: {target.explained} at step {target.step} = "
                   f"{target.probability:.2f}; attributions to the inputs of every step",
                   loc="left")  # fmt: skip
    image = _heat(heat, cells[:, top].T, [column_names[i] for i in top], x)
    for ax in (line, heat):
        ax.axvspan(target.step + 0.5, len(cells) - 0.5, color="0.85", alpha=0.6, lw=0)
    heat.set_xlabel(f"step ({unit}); shaded: after the explained step")
    fig.colorbar(image, cax=fig.add_subplot(grid[1, 1]), label="log-odds per cell")
    return figure_png(fig)


def token_figure(expl: Any) -> bytes:
    """One bar chart per explained label: each token's attribution, tokens on the x axis."""
    plt = pyplot()
    n = len(expl.labels)
    fig, axes = plt.subplots(n, 1, figsize=(max(6.0, 0.28 * len(expl.tokens) + 2), 2.3 * n),
                             squeeze=False)  # fmt: skip
    for ax, label in zip(axes[:, 0], expl.labels, strict=True):
        scores = label.scores
        ax.bar(range(len(scores)), scores, color=[RAISE if v > 0 else LOWER for v in scores])
        ax.set_xticks(range(len(scores)), expl.tokens, fontsize=8)
        ax.axhline(0.0, color="0.3", lw=0.8)
        ax.set_ylabel("log-odds")
        ax.set_title(f"{label.name}: p = {label.probability:.2f} (canonical SMILES "
                     f"{label.canonical_probability:.2f})", loc="left")  # fmt: skip
    fig.suptitle(f"Molecule {expl.sample_id}: {expl.smiles}", x=0.01, ha="left", fontsize=10)
    fig.tight_layout()
    return figure_png(fig)
