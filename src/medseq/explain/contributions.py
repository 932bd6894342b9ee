"""One stay's contributions per variable: one ranking, one scale, table and figure alike.

Integrated gradients attribute the logit change ``f(x) - f(baseline)`` to every input: the
hourly cells of the time grid and, for a model with summary fusion, the window
statistics (``HR_mean``, ``GCS_min``...) and descriptors in the static vector. A clinician
should read one story, so the table printed by ``medseq explain`` and its figure share
:func:`stay_contributions`: each variable's net contribution (grid + its summaries, signed,
in logit units), ranked by its size, with the two parts side by side. The heatmap shows
how the grid part spreads over the hours (its cells sum to the ``from_grid`` bar).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from medseq.explain.attribution import Attribution
from medseq.explain.importance import static_groups
from medseq.explain.plotting import figure_png, pyplot

GRID_COLOUR, SUMMARY_COLOUR = "C0", "C1"


def stay_contributions(attr: Attribution, index: int = 0) -> pd.DataFrame:
    """Net contribution of each variable or descriptor of stay ``index``, largest first.

    Returns
    -------
    pandas.DataFrame
        ``variable``, ``kind`` ("time series" or "descriptor"), ``contribution`` (signed
        sum of ``from_grid`` and ``from_summaries``), ``from_grid`` (the hourly cells) and
        ``from_summaries`` (summary statistics, or the descriptor's encoded columns); the
        contributions of all rows add up to the explained output's change.
    """
    rows: dict[str, dict[str, Any]] = {
        v: {"kind": "time series", "from_grid": float(g), "from_summaries": 0.0}
        for v, g in zip(attr.feature_names, attr.values[index].sum(axis=0), strict=True)
    }
    if attr.static is not None:
        groups = static_groups(attr.static_names, attr.feature_names)
        for (group, kind), a in zip(groups, attr.static[index], strict=True):
            blank = {"kind": "descriptor" if kind == "descriptor" else "time series"}
            row = rows.setdefault(group, blank | {"from_grid": 0.0, "from_summaries": 0.0})
            row["from_summaries"] += float(a)
    frame = pd.DataFrame([{"variable": v} | r for v, r in rows.items()])
    frame.insert(2, "contribution", frame["from_grid"] + frame["from_summaries"])
    order = frame["contribution"].abs().sort_values(ascending=False, kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def split_line(ranking: pd.DataFrame) -> str:
    """Net contribution of the time grid and of the summaries, and their shares of the
    absolute contributions (``sum |from_grid|`` against ``sum |from_summaries|``)."""
    grid, summ = float(ranking["from_grid"].sum()), float(ranking["from_summaries"].sum())
    size = float(ranking["from_grid"].abs().sum() + ranking["from_summaries"].abs().sum())
    share = 100.0 * float(ranking["from_grid"].abs().sum()) / size if size > 0 else 0.0
    return (
        f"time grid: net {grid:+.3f}, {share:.0f} % of the absolute contributions; "
        f"summaries and descriptors: net {summ:+.3f}, {100 - share:.0f} %"
    )


def contribution_figure(
    values: np.ndarray,
    feature_names: Sequence[str],
    ranking: pd.DataFrame,
    *,
    length: int,
    step_hours: float = 1.0,
    mask: np.ndarray | None = None,
    title: str,
    subtitle: str = "",
    label: str,
) -> bytes:
    """The ranked variables: hourly heatmap (left) and the table's bars (right), one unit.

    Parameters
    ----------
    values : ndarray of shape (T, F)
        The stay's attributions on the time grid.
    ranking : DataFrame
        Rows of :func:`stay_contributions` to show, in order (the printed table's rows).
    subtitle : str
        A second title line, e.g. :func:`split_line` of the stay's full ranking.
    mask : ndarray of shape (T, F), optional
        1 where measured; drawn as dots.
    """
    plt = pyplot()
    length = max(int(length), 1)
    column = {name: i for i, name in enumerate(feature_names)}
    cells = np.full((len(ranking), length), np.nan)  # descriptors: no hourly row
    for r, name in enumerate(ranking["variable"]):
        if name in column:
            cells[r] = np.asarray(values)[:length, column[name]]
    limit = float(np.nanmax(np.abs(cells), initial=0.0)) or 1.0
    fig, (heat, bars) = plt.subplots(
        1, 2, figsize=(11.0, 0.34 * len(ranking) + 1.9), sharey=True,
        gridspec_kw={"width_ratios": [3, 1.3], "wspace": 0.45},
    )  # fmt: skip
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.88")
    image = heat.imshow(
        np.ma.masked_invalid(cells), aspect="auto", cmap=cmap, vmin=-limit, vmax=limit,
        interpolation="nearest", extent=(0.0, length * step_hours, len(ranking) - 0.5, -0.5),
    )  # fmt: skip
    if mask is not None:
        for r, name in enumerate(ranking["variable"]):
            if name in column:
                hours = np.nonzero(np.asarray(mask)[:length, column[name]])[0]
                heat.scatter((hours + 0.5) * step_hours, np.full(len(hours), r), s=6, c="k")
    heat.set_yticks(range(len(ranking)), list(ranking["variable"]))
    heat.set_xlabel("hours since ICU admission (dots: measured; grey: no hourly values)")
    heat.grid(False)
    fig.colorbar(image, ax=heat, label=f"{label}, per hour", fraction=0.04, pad=0.02)
    rows = np.arange(len(ranking))
    bars.barh(rows - 0.2, ranking["from_grid"], height=0.4, color=GRID_COLOUR, label="time grid")
    bars.barh(
        rows + 0.2, ranking["from_summaries"], height=0.4, color=SUMMARY_COLOUR,
        label="summaries / descriptor",
    )  # fmt: skip
    bars.scatter(ranking["contribution"], rows, marker="|", s=160, c="k", label="net", zorder=3)
    bars.axvline(0.0, color="0.3", lw=0.8)
    bars.set_xlabel(label)
    bars.legend(frameon=False, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
    fig.suptitle(f"{title}\n{subtitle}".strip(), x=0.01, ha="left", fontsize=10)
    return figure_png(fig)
