"""Report sections on who the model fails, what data it lacks, and what it looks at."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from medseq.explain import (
    attention_weights,
    deletion_check,
    explain_stay,
    global_importance,
    has_attention,
    integrated_gradients,
)
from medseq.explain.figures import importance_plot
from medseq.features.base import describe
from medseq.report import figures
from medseq.report.data_quality import compare_missingness, missingness, static_missingness
from medseq.report.datasets import EvaluatedSet
from medseq.report.subgroups import subgroup_table, subgroups_for

Figures = dict[str, bytes]


def subgroup_section(
    bundle, ev: EvaluatedSet, *, n_boot: int, random_state: int = 0
) -> tuple[pd.DataFrame | None, Figures]:
    """Subgroup table of the internal set and its AUROC forest plot (None: no definitions)."""
    groups = subgroups_for(bundle, ev)
    if not groups:
        return None, {}
    table = subgroup_table(
        ev.y,
        ev.risk,
        groups,
        threshold=bundle.threshold,
        n_boot=n_boot,
        random_state=random_state,
        patients=ev.groups,
    )
    overall = float(np.nan_to_num(_auroc(ev)))
    return table, {"subgroups": figures.subgroup_figure(table, overall, "auroc")}


def _auroc(ev: EvaluatedSet) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(ev.y, ev.risk))


def quality_section(
    bundle, sets: dict[str, EvaluatedSet], *, flag_points: float = 10.0
) -> tuple[pd.DataFrame, pd.DataFrame, Figures]:
    """Missingness of time series and descriptors per set, compared with the first set."""
    names = describe(bundle.featurizer).names("F")
    series = {ev.name: missingness(ev.features, names) for ev in sets.values()}
    static = {ev.name: static_missingness(ev.static) for ev in sets.values()}
    table = compare_missingness(series, flag_points=flag_points)
    static_table = compare_missingness(static, flag_points=flag_points)
    return table, static_table, {"missingness": figures.missingness_figure(series)}


def _sample(ev: EvaluatedSet, n: int, random_state: int) -> np.ndarray:
    rng = np.random.default_rng(random_state)
    size = min(n, len(ev.y))
    return np.sort(rng.choice(len(ev.y), size=size, replace=False))


def _mean_attention(weights: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Mean weight per hour over the stays that reach that hour."""
    valid = np.arange(weights.shape[1])[None, :] < lengths[:, None]
    return weights.sum(axis=0) / np.maximum(valid.sum(axis=0), 1)


def explanation_section(
    bundle, ev: EvaluatedSet, *, n_explain: int, ig_steps: int, k: int, random_state: int = 0
) -> tuple[dict[str, Any], Figures]:
    """Global importance, a deletion check and one worked example, on a sample of stays.

    The example is the sampled stay with the highest risk: the case a clinician would
    most want explained.
    """
    idx = _sample(ev, n_explain, random_state)
    sample = {key: value[idx] for key, value in ev.features.items()}
    ig = integrated_gradients(bundle, sample, n_steps=ig_steps)
    importance = global_importance(ig)
    deletion = deletion_check(bundle, sample, ig, k=k, random_state=random_state)
    reference = None
    if has_attention(bundle):
        reference = _mean_attention(attention_weights(bundle, sample), sample["lengths"])
    top = int(np.argmax(ev.risk[idx]))
    one = {key: value[top : top + 1] for key, value in sample.items()}
    subject = int(ev.subject_ids[idx[top]])
    example = explain_stay(
        bundle,
        one,
        subject,
        events=ev.data.events,
        static=ev.data.static,
        n_steps=max(ig_steps, 64),
        reference_attention=reference,
    )
    figs = {"importance": importance_plot(importance)}
    figs |= {f"example_{name}": png for name, png in example.figures.items()}
    summary = {
        "n_stays": len(idx),
        "ig_steps": ig_steps,
        "median_relative_delta": float(np.median(ig.relative_delta)),
        "max_relative_delta": float(np.max(ig.relative_delta)),
        "importance": importance.head(15).to_dict(orient="records"),
        "faithfulness": deletion.summary(),
        "example": example.to_dict() | {"attention": None},
        "example_table": example.top_variables.to_dict(orient="records"),
    }
    return summary, figs
