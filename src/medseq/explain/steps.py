"""Why a sequence-labelling model gave each step its class: one sequence, three views.

For a bundle whose model labels every step (``ConvRNN(mode="sequence")``, e.g. a night of
30-s sleep epochs), ``medseq explain BUNDLE --data D --subject ID`` gives:

- **the sequence as labelled**: true and predicted class per step, and the probability of
  the predicted class (where the model hesitates), as one figure;
- **input importance** (occlusion, Zeiler & Fergus 2014): for each input column, the drop
  in the mean probability of the predicted class, per class, when that column is set to 0
  over the whole sequence (0 is the training mean of a z-scored input). ``F`` forward passes;
- **context reach** (gradient saliency, Simonyan et al. 2014): for sampled target steps
  ``t``, the gradient norm of step ``t``'s predicted logit with respect to the inputs at
  ``t + k``, averaged over targets, for ``k`` in ``[-reach, reach]``. It shows how far
  into the past and the future a bidirectional recurrence actually looks;
- **one step explained** (:mod:`medseq.explain.target_step`): integrated gradients of the
  log-odds at a chosen step (``--step``; default the step of highest risk) over every
  step × column, so "why was the risk high at hour 31" has an additive answer; a causal
  model gives the later steps exactly 0.

Nothing here names a dataset: inputs come from the bundle's own dataset spec and
featurizer, column names from the featurizer's ``describe()`` when it has one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseq.bundle import MANIFEST_FILE
from medseq.explain.target_step import (
    TargetStep,
    default_step,
    target_step_attributions,
)


def is_step_bundle(bundle_dir: str | os.PathLike) -> bool:
    """Whether the bundle's model labels every step (read from its JSON, no weights)."""
    manifest = Path(bundle_dir) / MANIFEST_FILE
    if not manifest.is_file():
        return False
    config = json.loads(manifest.read_text()).get("model_config", {})
    return config.get("mode") == "sequence"


@dataclass
class StepExplanation:
    """One sequence: labels, predictions, column importance per class, context reach."""

    sample_id: int
    class_names: list[str]
    column_names: list[str]
    y_true: np.ndarray  # (T,), NaN where unlabelled
    prob: np.ndarray  # (T, K)
    occlusion: np.ndarray  # (F, K): drop in mean P(predicted) over steps predicted as class k
    reach: np.ndarray  # (2 * reach + 1,): gradient norm at offset k, normalised to max 1
    target: TargetStep | None = None
    step_unit: str = "step"
    figures: dict[str, bytes] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        labelled = ~np.isnan(self.y_true)
        return float((self.prob[labelled].argmax(1) == self.y_true[labelled]).mean())

    def top_columns(self, n: int = 5) -> list[str]:
        order = np.argsort(-self.occlusion.mean(axis=1))
        return [self.column_names[i] for i in order[:n]]

    def to_dict(self) -> dict[str, Any]:
        half = len(self.reach) // 2
        return {
            "sample_id": self.sample_id,
            "n_steps": len(self.prob),
            "accuracy": self.accuracy,
            "predicted": [self.class_names[k] for k in self.prob.argmax(1)],
            "occlusion": {c: dict(zip(self.class_names, map(float, row), strict=True))
                          for c, row in zip(self.column_names, self.occlusion, strict=True)},
            "context_reach": {str(k - half): float(v) for k, v in enumerate(self.reach)},
            "target_step": None if self.target is None else self.target.to_dict(self.column_names),
        }  # fmt: skip

    def summary(self) -> str:
        half = len(self.reach) // 2
        far = [k - half for k, v in enumerate(self.reach) if v >= 0.1]
        reach = (
            f"gradient >= 10 % of its peak from step {min(far):+d} to {max(far):+d}"
            if far
            else f"context reach not measured (sequence of <= {2 * half} steps)"
        )
        head = (
            f"sample {self.sample_id}: {len(self.prob)} steps, accuracy {self.accuracy:.3f}; "
            f"most needed inputs: {', '.join(self.top_columns())}; {reach}"
        )
        if self.target is None:
            return head
        return head + "\n" + self.target.summary(self.column_names, self.step_unit)


def _mean_prob(members, values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.softmax(m(values, lengths), -1) for m in members]).mean(0)


def step_occlusion(members, values: np.ndarray, n_classes: int) -> np.ndarray:
    """``(F, K)``: drop in P(predicted class) when a column is zeroed, per predicted class.

    The sequence and its ``F`` occluded copies go through each member as one batch.
    """
    n, n_columns = values.shape
    x = torch.as_tensor(values)[None].repeat(n_columns + 1, 1, 1)  # (F + 1, T, F)
    x[1:] = torch.as_tensor(values)[None].masked_fill(
        torch.eye(n_columns, dtype=torch.bool)[:, None, :], 0.0
    )
    with torch.no_grad():
        prob = _mean_prob(members, x, torch.full((n_columns + 1,), n))  # (F + 1, T, K)
    predicted = prob[0].argmax(1)  # (T,)
    index = predicted[None, :, None].expand(n_columns + 1, -1, 1)
    chosen = prob.gather(2, index)[..., 0]  # (F + 1, T)
    drop = (chosen[0][None] - chosen[1:]).numpy()  # (F, T)
    out = np.full((n_columns, n_classes), np.nan)
    for k in range(n_classes):
        where = (predicted == k).numpy()
        if where.any():
            out[:, k] = drop[:, where].mean(axis=1)
    return out


def context_reach(members, values: np.ndarray, reach: int = 30, n_targets: int = 16) -> np.ndarray:
    """Mean gradient norm of a step's predicted logit w.r.t. inputs ``k`` steps away.

    One copy of the sequence per target step, in one batch: copy ``b`` back-propagates
    only its own target's logit, so one backward pass gives every target's gradient.
    """
    n = len(values)
    if n <= 2 * reach:
        return np.zeros(2 * reach + 1)
    targets = torch.as_tensor(np.linspace(reach, n - reach - 1, n_targets).astype(np.int64))
    x = torch.as_tensor(values)[None].repeat(n_targets, 1, 1).requires_grad_(True)
    lengths = torch.full((n_targets,), n)
    logits = torch.stack([m(x, lengths) for m in members]).mean(0)  # (B, T, K)
    at_target = logits[torch.arange(n_targets), targets]  # (B, K)
    (grad,) = torch.autograd.grad(at_target.max(dim=1).values.sum(), x)
    norms = grad.norm(dim=2).numpy()  # (B, T)
    total = sum(norms[b, t - reach : t + reach + 1] for b, t in enumerate(targets.tolist()))
    return total / total.max() if total.max() > 0 else total


def step_figure(expl: StepExplanation) -> bytes:
    """True and predicted class per step, and the probability of the prediction."""
    from medseq.explain.plotting import figure_png, pyplot

    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 4.5), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})  # fmt: skip
    steps = np.arange(len(expl.prob))
    top.step(steps, expl.y_true, where="mid", label="true", lw=1.2)
    top.step(steps, expl.prob.argmax(1), where="mid", label="predicted", lw=0.9, alpha=0.8)
    top.set_yticks(range(len(expl.class_names)), expl.class_names)
    top.invert_yaxis()
    top.legend(loc="upper right")
    top.set_title(f"sample {expl.sample_id}: accuracy {expl.accuracy:.3f}")
    bottom.plot(steps, expl.prob.max(1), lw=0.8)
    bottom.set_ylabel("P(predicted)")
    bottom.set_xlabel("step")
    return figure_png(fig)


def explain_steps(
    bundle_dir: str | os.PathLike,
    data_path: str | os.PathLike,
    sample_id: int,
    *,
    output_dir: str | os.PathLike | None = None,
    step: int | None = None,
    n_steps: int = 64,
) -> tuple[StepExplanation, list[Path]]:
    """Read ``data_path`` with the bundle's dataset, explain sequence ``sample_id``.

    ``step``: the step whose prediction integrated gradients explain (default
    :func:`~medseq.explain.target_step.default_step`); ``n_steps``: integration points.
    Files: ``<output_dir>/sample-<id>-steps.png``, ``sample-<id>-step-<t>.png`` and
    ``sample-<id>.json`` (``output_dir`` defaults to ``explain-<id>/``).
    """
    from medseq.explain.gradients import read_sample

    bundle, data, labels, ids = read_sample(bundle_dir, data_path, sample_id)
    arrays = bundle.spec().transform(bundle.featurizer, data, ids)
    n = int(arrays["lengths"][0])
    values = arrays["values"][0, :n]
    for member in bundle.members:
        member.eval()
    described = bundle.featurizer.describe()
    names = described.feature_names.get(described.output("values").dims[-1])
    classes = list(bundle.class_names or range(bundle.model_config.n_outputs))
    with torch.no_grad():
        x = torch.as_tensor(values)[None]
        prob = _mean_prob(bundle.members, x, torch.tensor([n]))[0].numpy()
    expl = StepExplanation(
        sample_id=int(sample_id),
        class_names=[str(c) for c in classes],
        column_names=list(names or [f"x{f}" for f in range(values.shape[1])]),
        y_true=labels.loc[int(sample_id)].to_numpy(dtype=np.float64)[:n],
        prob=prob,
        occlusion=step_occlusion(bundle.members, values, len(classes)),
        reach=context_reach(bundle.members, values),
        step_unit=described.step or "step",
    )
    chosen = default_step(prob) if step is None else int(step)
    expl.target = target_step_attributions(
        bundle.members, values, prob, chosen, sample_id=int(sample_id),
        class_names=expl.class_names, n_steps=n_steps,
    )  # fmt: skip
    return expl, _write(expl, Path(output_dir or f"explain-{sample_id}"))


def _write(expl: StepExplanation, out: Path) -> list[Path]:
    """The step figure, the explained step's figure and the JSON summary."""
    from medseq.explain.gradients import write_files
    from medseq.explain.sequence_figures import target_step_figure

    sample = expl.sample_id
    files: dict[str, bytes | str] = {f"sample-{sample}-steps.png": step_figure(expl)}
    if expl.target is not None:
        files[f"sample-{sample}-step-{expl.target.step}.png"] = target_step_figure(
            expl.target, expl.column_names, expl.step_unit
        )
    files[f"sample-{sample}.json"] = json.dumps(expl.to_dict(), indent=2)
    return write_files(out, files)
