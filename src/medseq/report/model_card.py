"""The model card: what the model is for, what it was trained on, how well and for whom.

Mitchell et al. (2019), "Model cards for model reporting", FAT*. The card is built from
numbers the report has just computed (never typed by hand), kept as JSON inside the
bundle's ``medseq.json`` (covered by its content hash) and rendered as ``MODEL_CARD.md``
beside it, so the description travels with the weights it describes.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from medseq import __version__
from medseq.features.base import describe

CARD_SCHEMA = "medseq.model_card/1"
RANKING_METRICS = ("auroc", "auprc", "mae", "r2")  # subgroup flags spelled out in limitations
CARD_SUBGROUP_METRICS = ("auroc", "brier", "mae", "r2")
SINGLE_SOURCE = "Trained and tested on a single data source."
REGRESSION_NOTE = (
    "Regression model: it predicts a value, not a risk, so it has no decision threshold "
    "and no calibration map; calibration in the large (mean observed vs mean predicted "
    "per decile of prediction) is shown in the report instead."
)


def _inputs(featurizer) -> dict[str, Any]:
    """What the model reads, from the featurizer's description: a clocked window of named
    time series (and static features), or the featurizer kind and its arrays."""
    d = describe(featurizer)
    if d.time_unit == "h" and d.horizon is not None and "F" in d.feature_names:
        return {
            "time_series": d.names("F"),
            "n_static": len(d.feature_names.get("S", [])),
            "window_hours": d.horizon,
        }
    return {"featurizer": d.kind, "arrays": {a.name: list(a.dims) for a in d.outputs}}


def _inputs_md(inputs: dict[str, Any]) -> str:
    if "time_series" in inputs:
        return (
            f"- inputs: {len(inputs['time_series'])} time series over "
            f"{inputs['window_hours']:g} h, {inputs['n_static']} static features"
        )
    return f"- inputs: featurised by {inputs['featurizer']}"


def _dataset_notes(bundle) -> dict[str, Any]:
    """The dataset spec's ``card_notes`` for the bundle's task (empty without that part)."""
    spec = bundle.spec()
    return {} if spec.card_notes is None else dict(spec.card_notes(bundle.dataset_task))


def _model_details(bundle, bundle_sha256: str | None) -> dict[str, Any]:
    config = bundle.model_config.to_dict()
    keep = ("kind", "cell", "hidden_size", "num_layers", "bidirectional", "pooling")
    return {
        **{k: config[k] for k in keep if k in config},
        "n_members": len(bundle.members),
        "inputs": _inputs(bundle.featurizer),
        "threshold": bundle.threshold,
        "medseq_version": __version__,
        "bundle_sha256": bundle_sha256,
    }


def _subgroup_records(table: pd.DataFrame | None) -> list[dict[str, Any]]:
    if table is None or table.empty:
        return []
    rows = table[table["metric"].isin(CARD_SUBGROUP_METRICS) | (table["metric"] == "")]
    out = []
    for row in rows.to_dict(orient="records"):
        out.append({k: (None if pd.isna(v) else v) for k, v in row.items() if k != "note"})
    return out


def _limitations(
    bundle, sets: dict[str, Any], subgroups: pd.DataFrame | None, notes: list[str]
) -> list[str]:
    out = list(_dataset_notes(bundle).get("data", [SINGLE_SOURCE]))
    n_train = bundle.provenance.get("n_subjects", {}).get("train")
    if n_train:
        out.append(f"Trained on {n_train} subjects; rare presentations are poorly represented.")
    if subgroups is not None and not subgroups.empty:
        flagged = subgroups[subgroups["flag"].astype(bool)]
        ranking = flagged[flagged["metric"].isin(RANKING_METRICS)]
        for row in ranking.itertuples():
            out.append(
                f"{row.attribute} {row.group}: {row.metric} {row.value:.3f} differs from the "
                f"rest ({row.rest:.3f}) beyond its 95 % CI."
            )
        if len(flagged) > len(ranking):
            out.append(
                f"{len(flagged) - len(ranking)} further subgroup differences in Brier score or "
                "thresholded metrics (they also move with a group's prevalence and risk mix); "
                "see the subgroup table."
            )
    if bundle.task == "regression":
        out.append(REGRESSION_NOTE)
    elif bundle.task in ("multiclass", "multilabel"):
        out.append("Class probabilities are the network's softmax/sigmoid outputs, uncalibrated.")
    elif bundle.calibration is None:
        out.append("No calibration fitted: risks are the network's raw outputs.")
    return out + list(notes)


def build_model_card(
    bundle,
    *,
    sets: dict[str, dict[str, Any]],
    subgroups: pd.DataFrame | None = None,
    explanations: dict[str, Any] | None = None,
    notes: list[str] | None = None,
    bundle_sha256: str | None = None,
) -> dict[str, Any]:
    """Assemble the card as JSON-able data.

    Parameters
    ----------
    bundle : medseq.bundle.Bundle
    sets : dict
        Set role ("internal", "external") -> ``{"name", "path", "sha256", "n",
        "n_positive", "metrics": {metric: [point, lo, hi]}, "calibration": {...}}``.
    subgroups : DataFrame, optional
        :func:`~medseq.report.subgroups.subgroup_table` of the internal set.
    explanations : dict, optional
        Top variables and the faithfulness check.
    notes : list of str, optional
        Further limitations (data quality flags, calibration drift, overlap warnings).
    bundle_sha256 : str, optional
        The bundle's content hash before the card was added.
    """
    task = bundle.dataset_task
    return {
        "schema": CARD_SCHEMA,
        "model_details": _model_details(bundle, bundle_sha256),
        "intended_use": _dataset_notes(bundle).get("intended_use", {"task": task}),
        "training_data": bundle.provenance,
        "evaluation": sets,
        "cross_validation": _cross_validation(bundle),
        "calibration": bundle.calibration,
        "subgroups": _subgroup_records(subgroups),
        "explanations": explanations or {},
        "limitations": _limitations(bundle, sets, subgroups, notes or []),
        "ethical_considerations": [
            "Risk scores can encode differences in care between groups present in the "
            "training data; read the subgroup table before use in a population.",
            "A high risk is a prompt for clinical review, not a prognosis to act on alone.",
        ],
    }


def _cross_validation(bundle) -> dict[str, Any]:
    """The training run's out-of-fold metrics, pooled and as mean ± sd over folds (CV only).

    The spread is what a reader needs to judge whether a difference between two models is
    more than the fold-to-fold noise; the note says whether the folds were truly held out.
    """
    spread = bundle.metrics.get("validation_fold_mean_sd")
    if not spread:
        return {}
    split = bundle.provenance.get("split", {})
    inner = split.get("inner_val_fraction", 0.0)
    note = (
        f"members early-stopped on {inner:.0%} of each fold's training subjects, so every "
        "fold was held out from its members"
        if inner
        else "members early-stopped on the fold they are scored on: optimistic"
    )
    pooled = bundle.metrics.get("validation", {})
    return {
        "folds": split.get("cv_folds"),
        "early_stopping": note,
        "metrics": {
            name: {"pooled": pooled.get(name), "mean": mean, "sd": sd}
            for name, (mean, sd) in spread.items()
        },
    }


def _cross_validation_md(cv: dict[str, Any]) -> list[str]:
    lines = [f"## Cross-validation ({cv['folds']} folds, training data)", ""]
    lines += [f"Out-of-fold predictions; {cv['early_stopping']}.", ""]
    lines += ["| metric | pooled | mean ± sd over folds |", "|---|---:|---:|"]
    for name, m in cv["metrics"].items():
        pooled = "" if m["pooled"] is None else f"{m['pooled']:.3f}"
        lines.append(f"| {name} | {pooled} | {m['mean']:.3f} ± {m['sd']:.3f} |")
    return [*lines, ""]


def _metrics_table(metrics: dict[str, list[float]]) -> list[str]:
    lines = ["| metric | value | 95 % CI |", "|---|---:|---|"]
    for name, (point, lo, hi) in metrics.items():
        lines.append(f"| {name} | {point:.3f} | {lo:.3f} – {hi:.3f} |")
    return lines


def _subgroups_md(records: list[dict[str, Any]]) -> list[str]:
    lines = ["| attribute | group | n | metric | value | 95 % CI | rest | flag |"]
    lines.append("|---|---|---:|---|---:|---|---:|---|")
    for r in records:
        if r.get("value") is None:
            lines.append(f"| {r['attribute']} | {r['group']} | {r['n']} | | | | | |")
            continue
        flag = "**differs**" if r["flag"] else ""
        lines.append(
            f"| {r['attribute']} | {r['group']} | {r['n']} | {r['metric']} | {r['value']:.3f} "
            f"| {r['lo']:.3f} – {r['hi']:.3f} | {r['rest']:.3f} | {flag} |"
        )
    return lines


def _outcome_md(summary: dict[str, Any]) -> str:
    """How many stays had the outcome (binary), or the mean target (regression)."""
    if "n_positive" in summary:
        return f"{summary['n_positive']} with the outcome"
    if "class_counts" in summary:
        counts = ", ".join(f"{k} {v}" for k, v in summary["class_counts"].items())
        return f"per class or label: {counts}"
    observed, predicted = summary["mean_observed"], summary["mean_predicted"]
    return f"mean observed {observed:.3f}, mean predicted {predicted:.3f}"


def render_markdown(card: dict[str, Any]) -> str:
    """The card as markdown (``MODEL_CARD.md``)."""
    d, use = card["model_details"], card["intended_use"]
    lines = [f"# Model card: {use.get('task', 'medseq model')}", ""]
    lines += ["## Model details", ""]
    lines += [f"- {k}: {v}" for k, v in d.items() if k != "inputs"]
    lines += [_inputs_md(d["inputs"]), ""]
    lines += ["## Intended use", ""]
    lines += [f"- {k.replace('_', ' ')}: {v}" for k, v in use.items() if k != "out_of_scope"]
    lines += [f"- out of scope: {x}" for x in use.get("out_of_scope", [])] + [""]
    prov = card["training_data"]
    lines += ["## Training data", "", f"- dataset: {prov.get('dataset')}, task: {prov.get('task')}"]
    for role, f in prov.get("files", {}).items():
        lines.append(f"- {role}: `{f['path']}` (sha256 `{f['sha256'][:16]}…`)")
    lines += [f"- subjects: {prov.get('n_subjects')}", ""]
    for role, s in card["evaluation"].items():
        lines += [f"## Evaluation: {s['name']} ({role})", ""]
        lines += [f"`{s['path']}`: {s['n']} samples, {_outcome_md(s)}.", ""]
        lines += [*_metrics_table(s["metrics"]), ""]
    if card.get("cross_validation"):
        lines += _cross_validation_md(card["cross_validation"])
    if card["calibration"]:
        c = card["calibration"]
        lines += ["## Calibration", "", f"- method: {c['method']} (fitted on validation data)"]
        lines += [f"- {k}: {v:.4g}" for k, v in c.items() if isinstance(v, float)] + [""]
    if card["subgroups"]:
        lines += ["## Subgroups (internal set)", "", *_subgroups_md(card["subgroups"]), ""]
    lines += ["## Known limitations", ""] + [f"- {x}" for x in card["limitations"]] + [""]
    lines += ["## Ethical considerations", ""]
    lines += [f"- {x}" for x in card["ethical_considerations"]] + [""]
    return "\n".join(lines)
