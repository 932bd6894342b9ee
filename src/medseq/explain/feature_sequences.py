"""Why a model over a sequence of feature vectors made its call: steps × named features.

For a recording-mode model whose input is one vector of **named** features per step (the
beat-feature GRUs: one step per heartbeat, columns such as ``rr_pre_ratio`` or
``qrs_correlation``, optionally record-level summaries in ``static``), ``medseq explain``
attributes the log-odds of the explained class (:mod:`medseq.explain.gradients`) with
integrated gradients to every (step, feature) cell and every static value, from an
all-zero baseline (the training mean of every z-scored column). Completeness makes the
table additive: the cells and the static values sum to ``f(x) - f(baseline)``, up to the
reported convergence delta. From the cells:

- **steps** (beats): each step's summed attribution, shown against the time of the step in
  the recording where the dataset spec gives one (``spec.step_times``), by index otherwise;
- **features**: each column's summed attribution over the steps, by name;
- **a faithfulness check** (occlusion): the change in the log-odds when the top feature's
  column is reset to 0 over every step, against the median change for the other columns.

Nothing here names a dataset: names come from the featurizer's ``describe()`` (along the
last dimension of ``values`` and along ``S``), times from the spec's optional part.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseq.explain.gradients import (
    Integrated,
    LogOdds,
    explained_class,
    explained_name,
    integrate,
    read_sample,
    write_files,
)

N_TOP = 5


def is_feature_sequence(described: Any, mode: str = "recording") -> bool:
    """A recording-mode model over ``values`` (N, T, F) with names along ``F``, no time grid
    mask (ICU grids have their own explanation) and no sample clock (waveforms: occlusion).

    ``described``: the featurizer's ``describe()``; ``mode``: the model config's mode.
    """
    if "values" not in described.output_names or "mask" in described.output_names:
        return False
    last = described.output("values").dims[-1]
    return mode == "recording" and last in described.feature_names and described.time_unit != "s"


def _members_logits(members, lengths: torch.Tensor, use_static: bool):
    """``logits_of(values[, static]) -> [member logits]`` with ``lengths`` held fixed."""

    def logits_of(values: torch.Tensor, static: torch.Tensor | None = None) -> list:
        extra = {"static": static} if use_static else {}
        n = len(values)
        return [m(values=values, lengths=lengths.expand(n), **extra) for m in members]

    return logits_of


@dataclass
class FeatureSequenceExplanation:
    """One sample's integrated gradients per step and named feature; ``figures`` name -> PNG."""

    sample_id: int
    explained: str
    probability: float
    label: str | None
    step: str  # what one step is ("beat")
    cells: np.ndarray  # (T, F) attributions of the valid steps
    feature_names: list[str]
    static: np.ndarray | None  # (S,)
    static_names: list[str]
    integrated: Integrated
    step_times_s: np.ndarray | None = None  # (T,)
    occlusion: dict[str, float] = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict)

    def per_step(self) -> np.ndarray:
        return self.cells.sum(axis=1)

    def per_feature(self) -> np.ndarray:
        return self.cells.sum(axis=0)

    def top_steps(self, n: int = N_TOP) -> list[int]:
        """Steps with the largest absolute summed attribution, largest first."""
        return [int(i) for i in np.argsort(-np.abs(self.per_step()), kind="stable")[:n]]

    def top_features(self, n: int = N_TOP) -> list[str]:
        order = np.argsort(-np.abs(self.per_feature()), kind="stable")[:n]
        return [self.feature_names[i] for i in order]

    def _where(self, step: int) -> str:
        if self.step_times_s is None:
            return f"{self.step} {step}"
        return f"{self.step} {step} at {self.step_times_s[step]:.2f} s"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (all attributions in log-odds units)."""
        ig = self.integrated
        per_feature = dict(zip(self.feature_names, map(float, self.per_feature()), strict=True))
        out = {
            "sample_id": self.sample_id, "explained": self.explained,
            "probability": self.probability, "label": self.label, "step": self.step,
            "log_odds": ig.output, "baseline_log_odds": ig.baseline_output,
            "convergence_delta": ig.convergence_delta,
            "per_step": [float(v) for v in self.per_step()],
            "step_times_s": None if self.step_times_s is None else self.step_times_s.tolist(),
            "top_steps": self.top_steps(), "per_feature": per_feature,
            "occlusion_check": self.occlusion,
        }  # fmt: skip
        if self.static is not None:
            out["static"] = dict(zip(self.static_names, map(float, self.static), strict=True))
        return out

    def summary(self) -> str:
        """Plain text for a terminal."""
        ig = self.integrated
        head = f"sample {self.sample_id}: {self.explained} = {self.probability:.3f}"
        head += f", label {self.label}" if self.label is not None else ""
        lines = [
            head,
            f"integrated gradients of the log-odds: {ig.output:+.3f} against "
            f"{ig.baseline_output:+.3f} at the training mean; delta {ig.convergence_delta:+.2g}",
            f"{self.step}s contributing most (log-odds):",
        ]
        lines += [f"  {self._where(s):28s} {self.per_step()[s]:+.3f}" for s in self.top_steps()]
        lines.append("features contributing most, summed over the steps:")
        per = dict(zip(self.feature_names, self.per_feature(), strict=True))
        lines += [f"  {name:28s} {per[name]:+.3f}" for name in self.top_features()]
        if self.static is not None and len(self.static):
            top = np.argsort(-np.abs(self.static))[:3]
            lines.append("record-level inputs: " + ", ".join(
                f"{self.static_names[i]} {self.static[i]:+.3f}" for i in top))  # fmt: skip
        if self.occlusion:
            lines.append(
                f"check: resetting {self.occlusion['feature']} moves the log-odds by "
                f"{self.occlusion['top_change']:+.3f}; the median other column by "
                f"{self.occlusion['median_other_change']:+.3f}"
            )
        return "\n".join(lines)


def column_occlusion(forward: LogOdds, values: torch.Tensor, static: tuple) -> np.ndarray:
    """``(F,)``: the log-odds with each feature column reset to 0 over all steps, minus the
    log-odds of the intact input (one batch of ``F`` copies)."""
    n_features = values.shape[-1]
    batch = values.repeat(n_features, 1, 1)
    batch[torch.arange(n_features), :, torch.arange(n_features)] = 0.0
    rest = tuple(s.expand(n_features, *s.shape[1:]) for s in static)
    with torch.no_grad():
        intact = forward(values, *static)[0, 0]
        return (forward(batch, *rest)[:, 0] - intact).numpy()


def attribute_sequence(
    bundle: Any, features: dict[str, np.ndarray], *, target: str | None = None, n_steps: int = 64
) -> tuple[Integrated, int, np.ndarray, np.ndarray]:
    """Integrated gradients of one featurised sample: ``(integrated, class, prob, occlusion)``.

    ``integrated.attributions`` holds ``values`` ``(T, F)`` (valid steps only) and, when the
    featurizer gives one, ``static`` ``(S,)``. ``occlusion``: :func:`column_occlusion`.
    """
    if len(features["lengths"]) != 1:
        raise ValueError(f"attribute_sequence explains one sample, got {len(features['lengths'])}")
    n = int(features["lengths"][0])
    values = torch.as_tensor(features["values"][:, :n]).float()
    lengths = torch.as_tensor(features["lengths"]).long()
    use_static = features.get("static") is not None and features["static"].shape[1] > 0
    for member in bundle.members:
        member.eval()
    prob = np.asarray(bundle.predict_arrays(features))[0]
    names = list(bundle.class_names or [str(k) for k in range(np.size(prob))])
    k = explained_class(np.atleast_1d(prob), bundle.task, names, target)
    forward = LogOdds(_members_logits(bundle.members, lengths, use_static), bundle.task, k)
    static = (torch.as_tensor(features["static"]).float(),) if use_static else ()
    integrated = integrate(forward, (values, *static), n_steps=n_steps)
    return integrated, k, np.atleast_1d(prob), column_occlusion(forward, values, static)


def _occlusion_check(cells: np.ndarray, names: list[str], change: np.ndarray) -> dict:
    top = int(np.argmax(np.abs(cells.sum(axis=0))))
    others = np.delete(np.abs(change), top)
    return {
        "feature": names[top],
        "top_change": float(change[top]),
        "median_other_change": float(np.median(others)) if len(others) else 0.0,
    }


def explain_feature_sequence(
    bundle_dir: str | os.PathLike,
    data_path: str | os.PathLike,
    sample_id: int,
    *,
    output_dir: str | os.PathLike | None = None,
    target: str | None = None,
    n_steps: int = 64,
) -> tuple[FeatureSequenceExplanation, list[Path]]:
    """Read ``data_path`` with the bundle's dataset, explain sample ``sample_id``.

    Files: ``<output_dir>/sample-<id>-steps-features.png`` and ``sample-<id>.json``
    (``output_dir`` defaults to ``explain-<id>/``).
    """
    from medseq.explain.sequence_figures import feature_sequence_figure

    bundle, data, labels, ids = read_sample(bundle_dir, data_path, sample_id)
    spec, described = bundle.spec(), bundle.featurizer.describe()
    features = spec.transform(bundle.featurizer, data, ids)
    integrated, k, prob, change = attribute_sequence(
        bundle, features, target=target, n_steps=n_steps
    )
    names = list(bundle.class_names or [str(c) for c in range(len(prob))])
    columns = described.names(described.output("values").dims[-1])
    cells = integrated.attributions[0]
    times = spec.step_times(bundle.featurizer, data, ids)[0] if spec.step_times else None
    label = labels.loc[int(sample_id)]
    expl = FeatureSequenceExplanation(
        sample_id=int(sample_id), explained=explained_name(bundle.task, names, k),
        probability=float(prob[k]),
        label=names[int(label)] if bundle.task == "multiclass" else str(label),
        step=described.step or "step", cells=cells, feature_names=columns,
        static=integrated.attributions[1] if len(integrated.attributions) > 1 else None,
        static_names=list(described.feature_names.get("S", [])), integrated=integrated,
        step_times_s=None if times is None else np.asarray(times, dtype=float)[: len(cells)],
        occlusion=_occlusion_check(cells, columns, change),
    )  # fmt: skip
    expl.figures = {"steps_features": feature_sequence_figure(expl)}
    return expl, write_files(Path(output_dir or f"explain-{sample_id}"), {
        f"sample-{sample_id}-steps-features.png": expl.figures["steps_features"],
        f"sample-{sample_id}.json": json.dumps(expl.to_dict(), indent=2),
    })  # fmt: skip
