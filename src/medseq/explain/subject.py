"""Why did the model fire for this patient? One stay's risk, attributions and attention.

:func:`explain_stay` works on features already in memory (the report uses it);
:func:`explain_subject` reads a set, explains one ``subject_id`` and writes the heatmaps
and a JSON summary (the ``medseq explain`` command).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medseq.explain.attention import attention_weights, has_attention
from medseq.explain.attribution import Attribution, integrated_gradients, time_grid
from medseq.explain.contributions import contribution_figure, split_line, stay_contributions
from medseq.explain.occlusion import occlusion

# What integrated gradients explain, by bundle task: the logit for risks (logits add up,
# probabilities saturate), the output itself for regression.
EXPLAINED_OUTPUT = {"binary": "logit of the risk", "regression": "predicted value"}


@dataclass
class SubjectExplanation:
    """Everything shown for one stay; ``figures`` maps a name to PNG bytes."""

    subject_id: int
    risk: float
    threshold: float | None
    calibrated_risk: float | None
    integrated_gradients: Attribution
    occlusion: Attribution | None
    attention: np.ndarray | None
    mask: np.ndarray
    top_variables: pd.DataFrame
    figures: dict[str, bytes] = field(default_factory=dict)
    explained_output: str = "logit of the risk"
    split: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (no arrays besides the attention weights)."""
        ig = self.integrated_gradients
        return {
            "subject_id": self.subject_id,
            "risk": self.risk,
            "calibrated_risk": self.calibrated_risk,
            "threshold": self.threshold,
            "decision": None if self.threshold is None else bool(self.risk >= self.threshold),
            "explained_output": self.explained_output,
            "output": float(ig.output[0]),
            "baseline_output": float(ig.baseline_output[0]),
            "ig_n_steps": int(ig.extra.get("n_steps", 0)),
            "convergence_delta": float(ig.convergence_delta[0]),
            "relative_convergence_delta": float(ig.relative_delta[0]),
            "top_variables": self.top_variables.to_dict(orient="records"),
            "split": self.split,
            "attention": None if self.attention is None else self.attention.tolist(),
        }

    def summary(self) -> str:
        """Plain text for a terminal."""
        d = self.to_dict()
        lines = [f"subject {self.subject_id}: risk {self.risk:.3f}"]
        if self.threshold is not None:
            call = "positive" if d["decision"] else "negative"
            lines[0] += f" (threshold {self.threshold:.3f}: {call})"
        lines.append(
            f"integrated gradients ({d['ig_n_steps']} steps): convergence delta "
            f"{d['convergence_delta']:+.4f} ({100 * d['relative_convergence_delta']:.2f} % of "
            f"f(x) - f(baseline) = {d['output'] - d['baseline_output']:+.3f})"
        )
        lines.append(f"contributions to the {self.explained_output}: {self.split}")
        lines.append(self.top_variables.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
        return "\n".join(lines)


def _top_variables(ranking: pd.DataFrame, values_raw: pd.Series | None, top_n: int):
    """The first ``top_n`` rows of the stay's ranking, with each one's last raw value."""
    frame = ranking.head(top_n).copy()
    if values_raw is not None:
        frame["last_value"] = frame["variable"].map(values_raw)
    return frame


def _last_values(
    events: pd.DataFrame | None,
    static: pd.DataFrame | None,
    subject_id: int,
    window_hours: float,
) -> pd.Series | None:
    """Last raw value (clinical units) of each variable in the window, and descriptors."""
    if events is None:
        return None
    rows = events[(events["subject_id"] == subject_id) & (events["time"] <= window_hours)]
    last = rows.groupby("code", observed=True)["value"].last()
    if static is not None and subject_id in static.index:
        described = static.loc[subject_id].dropna()
        last = pd.concat([last, described[~described.index.isin(last.index)]])
    return last


def explain_stay(
    bundle,
    features: dict[str, np.ndarray],
    subject_id: int,
    *,
    events: pd.DataFrame | None = None,
    static: pd.DataFrame | None = None,
    n_steps: int = 64,
    occlusion_window: int | None = 6,
    top_n: int = 10,
    reference_attention: np.ndarray | None = None,
) -> SubjectExplanation:
    """Explain one stay given as a feature dict with N = 1.

    ``events`` and ``static`` (the raw tables) add each top variable's last raw value in
    clinical units; ``occlusion_window=None`` skips the occlusion cross-check.
    """
    if len(features["lengths"]) != 1:
        raise ValueError(f"explain_stay explains one stay, got {len(features['lengths'])}")
    risk = float(bundle.predict_arrays(features)[0])
    ig = integrated_gradients(bundle, features, n_steps=n_steps)
    occ = occlusion(bundle, features, window_steps=occlusion_window) if occlusion_window else None
    att = attention_weights(bundle, features)[0] if has_attention(bundle) else None
    grid = time_grid(bundle)
    (step, horizon), length = grid.hours(), int(features["lengths"][0])
    raw = _last_values(events, static, subject_id, horizon)
    ranking = stay_contributions(ig)  # the table and the figure both read this one ranking
    expl = SubjectExplanation(
        subject_id=int(subject_id),
        risk=risk,
        threshold=bundle.threshold,
        calibrated_risk=None if bundle.calibration is None else float(bundle.calibrate(risk)),
        integrated_gradients=ig,
        occlusion=occ,
        attention=att,
        mask=features["mask"][0],
        top_variables=_top_variables(ranking, raw, top_n),
        explained_output=EXPLAINED_OUTPUT.get(bundle.task, "logit of the risk"),
        split=split_line(ranking),
    )
    expl.figures = _figures(expl, length, step, reference_attention)
    return expl


def _figures(
    expl: SubjectExplanation, length: int, step: float, reference: np.ndarray | None
) -> dict[str, bytes]:
    """Heatmaps of the attributions and the attention plot of one explained stay."""
    from medseq.explain.figures import ATTRIBUTION_LABEL, attention_plot, attribution_heatmap

    is_risk = expl.explained_output == EXPLAINED_OUTPUT["binary"]
    common: dict[str, Any] = {"length": length, "step_hours": step, "mask": expl.mask}
    common["label"] = (
        ATTRIBUTION_LABEL if is_risk else f"contribution to the {expl.explained_output}"
    )
    sid, ig, occ = expl.subject_id, expl.integrated_gradients, expl.occlusion
    what = "risk" if is_risk else "prediction"
    title = f"Subject {sid}: integrated gradients ({what} {expl.risk:.2f})"
    figures = {
        "integrated_gradients": contribution_figure(
            ig.values[0],
            ig.feature_names,
            expl.top_variables,
            title=title,
            subtitle=expl.split,
            **common,
        )
    }
    if occ is not None:  # a cross-check: its rows in the same order as the ranking
        hours = occ.extra.get("window_steps", 1.0) * step
        title = f"Subject {sid}: occlusion, {hours:g} h blocks (rows as ranked above)"
        column = {name: i for i, name in enumerate(occ.feature_names)}
        order = [column[v] for v in expl.top_variables["variable"] if v in column]
        figures["occlusion"] = attribution_heatmap(
            occ.values[0], occ.feature_names, title=title, order=order, **common
        )
    if expl.attention is not None:
        figures["attention"] = attention_plot(
            expl.attention,
            length=length,
            step_hours=step,
            reference=reference,
            title=f"Subject {sid}: attention over time",
        )
    return figures


def explain_subject(
    bundle_dir: str | os.PathLike,
    data_path: str | os.PathLike,
    subject_id: int,
    *,
    output_dir: str | os.PathLike | None = None,
    n_steps: int = 64,
    occlusion_window: int | None = 6,
) -> tuple[SubjectExplanation, list[Path]]:
    """Read ``data_path``, explain ``subject_id`` and write its figures and JSON.

    Returns the explanation and the written files (``<output_dir>/subject-<id>-*.png``
    and ``subject-<id>.json``; ``output_dir`` defaults to ``explain-<id>/``).
    """
    from medseq.bundle import load_bundle
    from medseq.experiment.data import read_set

    bundle = load_bundle(bundle_dir)
    time_grid(bundle)  # refuses at once a bundle without a time grid of named variables
    data = read_set(bundle.dataset, data_path)
    if int(subject_id) not in set(data.static.index.tolist()):
        raise ValueError(f"{data_path}: no subject_id {subject_id} in this set")
    features = bundle.spec().transform(bundle.featurizer, data, np.array([int(subject_id)]))
    expl = explain_stay(
        bundle,
        features,
        int(subject_id),
        events=data.events,
        static=data.static,
        n_steps=n_steps,
        occlusion_window=occlusion_window,
    )
    out = Path(output_dir or f"explain-{subject_id}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, png in expl.figures.items():
        path = out / f"subject-{subject_id}-{name}.png"
        path.write_bytes(png)
        written.append(path)
    summary = out / f"subject-{subject_id}.json"
    summary.write_text(json.dumps(expl.to_dict(), indent=2, default=_json_default))
    return expl, [*written, summary]


def _json_default(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
