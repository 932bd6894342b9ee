"""Global variable importance: per-stay attributions aggregated over a dataset.

A clinician asks "what does this model look at?" in the units of the chart: heart rate,
lactate, age; not "input column 143". So the attribution of a variable gathers its
trajectory (every time step of ``values``) and, for models with summary fusion, its
window statistics in ``static`` (``HR_mean``, ``HR_max``, ...); descriptors gather their
encoded columns (``ICUType=3`` and ``ICUType=unknown`` are both ``ICUType``).

Importance is the mean over stays of the summed absolute attribution
(``mean_n sum |a|``); ``mean_signed`` keeps the sign (positive: on average pushes risk up),
and ``share`` is the importance as a fraction of the total.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medseq.explain.attribution import Attribution
from medseq.features.icu.summary import GRID_STATISTICS


def static_groups(static_names: list[str], variables: list[str]) -> list[tuple[str, str]]:
    """``(group, kind)`` of each static column: its variable (summary) or descriptor."""
    known = set(variables)
    out = []
    for name in static_names:
        summary = [
            name[: -len(stat) - 1]
            for stat in GRID_STATISTICS
            if name.endswith("_" + stat) and name[: -len(stat) - 1] in known
        ]
        if summary:
            out.append((summary[0], "summary"))
        elif "=" in name:
            out.append((name.split("=", 1)[0], "descriptor"))
        elif name.endswith("_missing"):
            out.append((name[: -len("_missing")], "descriptor"))
        else:
            out.append((name, "descriptor"))
    return out


def global_importance(attribution: Attribution) -> pd.DataFrame:
    """One row per variable or descriptor, most important first.

    Parameters
    ----------
    attribution : Attribution
        Per-stay attributions, e.g. from :func:`~medseq.explain.integrated_gradients`
        on a few hundred stays.

    Returns
    -------
    pandas.DataFrame
        Columns ``variable``, ``kind`` ("time series" or "descriptor"), ``importance``
        (mean summed |attribution|), ``mean_signed``, ``share`` and ``from_trajectory``
        (the part of ``importance`` carried by the hourly values rather than by the
        summary statistics).
    """
    names = attribution.feature_names
    traj_abs = np.abs(attribution.values).sum(axis=1).mean(axis=0)  # (F,)
    traj_signed = attribution.values.sum(axis=1).mean(axis=0)
    rows = {
        v: {"kind": "time series", "abs": a, "signed": s, "traj": a}
        for v, a, s in zip(names, traj_abs, traj_signed, strict=True)
    }
    if attribution.static is not None and attribution.static_names:
        s_abs = np.abs(attribution.static).mean(axis=0)
        s_signed = attribution.static.mean(axis=0)
        groups = static_groups(attribution.static_names, names)
        for (group, kind), a, s in zip(groups, s_abs, s_signed, strict=True):
            kind = "time series" if kind == "summary" else kind
            row = rows.setdefault(group, {"kind": kind, "abs": 0.0, "signed": 0.0, "traj": 0.0})
            row["abs"] += a
            row["signed"] += s
    frame = pd.DataFrame(
        [
            {
                "variable": v,
                "kind": r["kind"],
                "importance": float(r["abs"]),
                "mean_signed": float(r["signed"]),
                "from_trajectory": float(r["traj"]),
            }
            for v, r in rows.items()
        ]
    )
    total = frame["importance"].sum()
    frame["share"] = frame["importance"] / total if total > 0 else 0.0
    frame = frame.sort_values("importance", ascending=False, kind="stable")
    return frame.reset_index(drop=True)
