"""Figures of explanations: heatmaps (variables × hours), attention, importance, signals.

Each function returns PNG bytes (see :mod:`medseq.explain.plotting`); the report embeds
them and the ``explain`` command writes them to files. Colours are chosen to be read by
a clinician at a glance: red pushes the risk up, blue pulls it down, white is neutral,
and dots mark the hours in which a variable was actually measured (the rest is
carried forward by the featurizer).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from medseq.explain.plotting import figure_png, pyplot

ATTRIBUTION_LABEL = "contribution to the risk logit"


def attribution_heatmap(
    attribution: np.ndarray,
    feature_names: Sequence[str],
    *,
    length: int,
    step_hours: float = 1.0,
    mask: np.ndarray | None = None,
    top_n: int = 15,
    title: str = "Integrated gradients",
    label: str = ATTRIBUTION_LABEL,
    order: Sequence[int] | None = None,
) -> bytes:
    """Heatmap of one stay's attributions, variables × hours, most important on top.

    Parameters
    ----------
    attribution : ndarray of shape (T, F)
    feature_names : sequence of str, length F
    length : int
        Valid steps of the stay; later (padding) steps are not drawn.
    step_hours : float, default=1.0
    mask : ndarray of shape (T, F), optional
        1 where the variable was observed; drawn as dots.
    top_n : int, default=15
        Variables shown (by total |attribution|); the others are summarised in the title.
    title : str
    order : sequence of int, optional
        The variable columns to show, in this order (e.g. a stay's ranking from
        :func:`~medseq.explain.contributions.stay_contributions`); by default the
        ``top_n`` largest by total |attribution|.
    """
    plt = pyplot()
    length = max(int(length), 1)
    a = np.asarray(attribution)[:length]
    if order is None:
        ranked = np.argsort(-np.abs(a).sum(axis=0), kind="stable")[: min(top_n, a.shape[1])]
        order = [int(i) for i in ranked]
    order = list(order)
    shown = a[:, order].T  # (top_n, length)
    limit = float(np.abs(shown).max()) or 1.0
    fig, ax = plt.subplots(figsize=(9.0, 0.32 * len(order) + 1.6))
    extent = (0.0, length * step_hours, len(order) - 0.5, -0.5)
    image = ax.imshow(
        shown,
        aspect="auto",
        cmap="RdBu_r",
        vmin=-limit,
        vmax=limit,
        interpolation="nearest",
        extent=extent,
    )
    if mask is not None:
        rows, cols = np.nonzero(np.asarray(mask)[:length, order].T)
        ax.scatter((cols + 0.5) * step_hours, rows, s=6, c="k", marker="o")
    ax.set_yticks(range(len(order)), [feature_names[i] for i in order])
    dots = " (dots: hours with a measurement)" if mask is not None else ""
    ax.set_xlabel("hours since ICU admission" + dots)
    ax.set_ylabel("variable")
    ax.grid(False)
    hidden = a.shape[1] - len(order)
    suffix = f" (top {len(order)} of {a.shape[1]} variables)" if hidden else ""
    ax.set_title(title + suffix, loc="left")
    fig.colorbar(image, ax=ax, label=label, fraction=0.04, pad=0.02)
    return figure_png(fig)


def attention_plot(
    weights: np.ndarray,
    *,
    length: int,
    step_hours: float = 1.0,
    reference: np.ndarray | None = None,
    title: str = "Attention over time",
) -> bytes:
    """Bar chart of one stay's attention weights per hour, with an optional reference line.

    ``reference`` (e.g. the mean weight per hour over a dataset) shows whether this stay's
    attention is unusual.
    """
    plt = pyplot()
    length = max(int(length), 1)
    hours = (np.arange(length) + 0.5) * step_hours
    fig, ax = plt.subplots(figsize=(9.0, 3.0))
    ax.bar(hours, np.asarray(weights)[:length], width=0.9 * step_hours, label="this stay")
    if reference is not None:
        ax.plot(hours, np.asarray(reference)[:length], color="C3", lw=1.5, label="dataset mean")
    ax.axhline(1.0 / length, color="0.4", ls=":", lw=1, label="uniform (1 / length)")
    ax.set_xlabel("hours since ICU admission")
    ax.set_ylabel("attention weight")
    ax.set_xlim(0, length * step_hours)
    ax.set_title(title, loc="left")
    ax.legend(frameon=False, loc="upper left")
    return figure_png(fig)


def importance_plot(
    importance: pd.DataFrame, *, top_n: int = 20, title: str = "Global variable importance"
) -> bytes:
    """Horizontal bars of :func:`~medseq.explain.global_importance`, largest on top.

    Bars are split into the part from the hourly trajectory and the rest (summary
    statistics or descriptor columns).
    """
    plt = pyplot()
    top = importance.head(top_n).iloc[::-1]
    share = top["share"].to_numpy() * 100.0
    traj = np.where(top["importance"] > 0, top["from_trajectory"] / top["importance"], 0.0)
    fig, ax = plt.subplots(figsize=(7.5, 0.28 * len(top) + 1.4))
    ax.barh(top["variable"], share * traj, color="C0", label="hourly trajectory")
    ax.barh(
        top["variable"],
        share * (1 - traj),
        left=share * traj,
        color="C1",
        label="summary statistics / descriptor",
    )
    ax.set_xlabel("share of total |attribution| (%)")
    ax.set_title(title, loc="left")
    ax.legend(frameon=False, loc="lower right")
    ax.grid(axis="y", visible=False)
    return figure_png(fig)


def signal_attribution_plot(
    signal: np.ndarray,
    attribution: np.ndarray,
    *,
    fs: float,
    segment_s: float = 0.5,
    n_segments: int = 3,
    units: str = "mV",
    title: str = "Signal with the most influential segments",
) -> bytes:
    """A waveform (e.g. one ECG lead) with its most influential segments highlighted.

    Parameters
    ----------
    signal, attribution : ndarray of shape (n_samples,)
        One channel and its per-sample attribution.
    fs : float
        Sampling frequency in Hz.
    segment_s : float, default=0.5
        Segment length in seconds; segments are ranked by summed |attribution|.
    n_segments : int, default=3
    units : str, default="mV"
    """
    if fs <= 0:
        raise ValueError(f"fs must be > 0 Hz, got {fs!r}")
    plt = pyplot()
    signal, attribution = np.asarray(signal, float), np.asarray(attribution, float)
    width = max(round(segment_s * fs), 1)
    n_windows = max(len(signal) // width, 1)
    scores = np.abs(attribution[: n_windows * width]).reshape(n_windows, -1).sum(axis=1)
    time_s = np.arange(len(signal)) / fs
    fig, ax = plt.subplots(figsize=(9.0, 3.0))
    ax.plot(time_s, signal, color="k", lw=0.8, label="signal")
    for rank, w in enumerate(np.argsort(-scores)[:n_segments]):
        label = "most influential segments" if rank == 0 else None
        ax.axvspan(w * width / fs, (w + 1) * width / fs, color="C3", alpha=0.25, label=label)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"amplitude ({units})")
    ax.set_title(title, loc="left")
    ax.legend(frameon=False, loc="upper right")
    return figure_png(fig)
