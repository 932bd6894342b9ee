"""Figures of the report for a regression bundle (a continuous target), as PNG bytes.

A regression model is read by three pictures: how close predictions lie to what was
observed (predicted vs observed, with the identity line), how its errors spread
(residual distribution), and whether it is right on average across the range of its
predictions (calibration-in-the-large per decile of prediction). Axis labels carry the
task's unit, e.g. "days" for length of stay.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from medseq.explain.plotting import figure_png, pyplot

Pairs = Mapping[str, tuple[np.ndarray, np.ndarray]]  # name -> (y_true, y_pred)


def _label(what: str, unit: str) -> str:
    return f"{what} ({unit})" if unit else what


def decile_calibration(
    y_true: np.ndarray, y_pred: np.ndarray, *, n_bins: int = 10, z: float = 1.96
) -> pd.DataFrame:
    """Mean observed and mean predicted per quantile bin of the prediction, with 95 % CIs.

    Calibration-in-the-large for a continuous target: a model that is right on average
    has, in every bin of its predictions, a mean observed value close to the mean
    predicted one. The CI is the normal interval of the bin's mean observed value
    (``mean +/- z * sd / sqrt(n)``), wide where bins are small or outcomes dispersed.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n_samples,)
    n_bins : int, default=10
        Equal-count bins (deciles by default); ties may merge bins.
    z : float, default=1.96

    Returns
    -------
    pandas.DataFrame
        One row per bin: ``n``, ``mean_predicted``, ``mean_observed``, ``lo``, ``hi``.
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    edges = np.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1)))
    bins = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    frame = pd.DataFrame({"bin": bins, "y": y, "p": p}).groupby("bin")
    out = pd.DataFrame(
        {
            "n": frame["y"].size(),
            "mean_predicted": frame["p"].mean(),
            "mean_observed": frame["y"].mean(),
        }
    )
    half = z * frame["y"].std(ddof=1).fillna(0.0) / np.sqrt(out["n"])
    out["lo"], out["hi"] = out["mean_observed"] - half, out["mean_observed"] + half
    return out.reset_index(drop=True)


def predicted_observed_figure(pairs: Pairs, *, unit: str = "") -> bytes:
    """Observed against predicted value, one hexbin panel per set, with the identity line.

    Axes stop at the 99th centile of all values: a handful of very long stays would
    otherwise squeeze every other stay into a corner.
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 4.6), squeeze=False)
    both = np.concatenate([np.concatenate([y, p]) for y, p in pairs.values()])
    low, top = float(np.min(both)), float(np.quantile(both, 0.99))  # a few outliers hide all
    for ax, (name, (y, p)) in zip(axes[0], pairs.items(), strict=True):
        extent = (low, top, low, top)
        hb = ax.hexbin(p, y, gridsize=30, mincnt=1, bins="log", cmap="Blues", extent=extent)
        ax.plot([low, top], [low, top], color="C3", ls="--", lw=1, label="perfect prediction")
        ax.set(xlabel=_label("predicted", unit), ylabel=_label("observed", unit))
        ax.set(xlim=(low, top), ylim=(low, top))
        ax.set_title(f"Predicted vs observed: {name} (to the 99th centile)", loc="left")
        ax.legend(frameon=False, loc="upper left")
        fig.colorbar(hb, ax=ax, label="stays (log scale)")
    fig.tight_layout()
    return figure_png(fig)


def residual_figure(pairs: Pairs, *, unit: str = "") -> bytes:
    """Histogram of residuals (observed - predicted) per set, with their mean marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    residuals = {name: y - p for name, (y, p) in pairs.items()}
    lo, hi = np.quantile(np.concatenate(list(residuals.values())), [0.005, 0.995])
    edges = np.linspace(lo, hi, 50)
    for i, (name, r) in enumerate(residuals.items()):
        ax.hist(np.clip(r, lo, hi), bins=edges, color=f"C{i}", alpha=0.5, label=name)
        ax.axvline(np.mean(r), color=f"C{i}", lw=1.5, label=f"mean, {name} ({np.mean(r):+.2f})")
    ax.axvline(0.0, color="0.3", ls="--", lw=1, label="no error")
    ax.set(xlabel=_label("residual: observed - predicted", unit), ylabel="stays")
    ax.set_title("Residual distribution (0.5 % tails clipped)", loc="left")
    ax.legend(frameon=False, loc="upper right")
    return figure_png(fig)


def decile_calibration_figure(pairs: Pairs, *, n_bins: int = 10, unit: str = "") -> bytes:
    """Mean observed vs mean predicted per decile of prediction, with 95 % CIs."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.0))
    tables = {name: decile_calibration(y, p, n_bins=n_bins) for name, (y, p) in pairs.items()}
    low = min(float(min(t["mean_predicted"].min(), t["lo"].min())) for t in tables.values())
    top = max(float(max(t["mean_predicted"].max(), t["hi"].max())) for t in tables.values())
    ax.plot([low, top], [low, top], color="0.5", ls="--", lw=1, label="perfect calibration")
    for i, (name, t) in enumerate(tables.items()):
        yerr = np.vstack([t["mean_observed"] - t["lo"], t["hi"] - t["mean_observed"]])
        ax.errorbar(
            t["mean_predicted"], t["mean_observed"], yerr=yerr, marker="o", ms=4,
            capsize=2, color=f"C{i}", label=name,
        )  # fmt: skip
    ax.set(xlabel=_label("mean predicted", unit), ylabel=_label("mean observed", unit))
    ax.set_title(f"Calibration in the large ({n_bins} equal-count bins)", loc="left")
    ax.legend(frameon=False, loc="upper left")
    return figure_png(fig)
