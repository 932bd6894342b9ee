"""One step of a sequence-labelling model, explained by the inputs of every step before it.

A per-step model (an hourly risk over an ICU stay, a sleep stage per epoch) gives a
prediction at every step; a clinician asks about one: "why was the risk high at hour 31?".
The answer is integrated gradients (Sundararajan et al. 2017, via Captum) of the log-odds
at that step (:mod:`medseq.explain.gradients`; for two classes, of the second, the risk)
with respect to the inputs of **every** step × column, from an all-zero baseline (the
training mean of each normalised value, "not observed" for a flag). The cells sum to
``f(x) - f(baseline)`` at that step, up to the reported convergence delta.

For a causal (unidirectional) model the inputs after the explained step cannot reach it:
their attributions are exactly 0, which the tests check; a bidirectional model shows how
much the future steps weigh. Nothing here names a dataset: the column names are the
featurizer's ``describe()`` names along the last dimension of ``values``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from medseq.explain.gradients import Integrated, LogOdds, integrate

N_TOP = 8


@dataclass
class TargetStep:
    """Attributions of step ``step``'s log-odds to the ``(T, F)`` inputs of the sequence."""

    sample_id: int
    step: int
    class_index: int
    explained: str
    probability: float
    cells: np.ndarray  # (T, F)
    integrated: Integrated

    @property
    def after_share(self) -> float:
        """Share of the absolute attribution on the steps after the explained one."""
        total = float(np.abs(self.cells).sum())
        return float(np.abs(self.cells[self.step + 1 :]).sum()) / total if total > 0 else 0.0

    def top_cells(self, names: list[str], n: int = N_TOP) -> list[tuple[int, str, float]]:
        """``(step, column, attribution)`` of the largest absolute cells, largest first."""
        order = np.argsort(-np.abs(self.cells), axis=None, kind="stable")[:n]
        rows, cols = np.unravel_index(order, self.cells.shape)
        pairs = zip(rows, cols, strict=True)
        return [(int(r), names[c], float(self.cells[r, c])) for r, c in pairs]

    def to_dict(self, names: list[str]) -> dict[str, Any]:
        ig = self.integrated
        per_column = dict(zip(names, map(float, self.cells.sum(axis=0)), strict=True))
        return {
            "step": self.step, "explained": self.explained, "probability": self.probability,
            "log_odds": ig.output, "baseline_log_odds": ig.baseline_output,
            "convergence_delta": ig.convergence_delta,
            "per_step": [float(v) for v in self.cells.sum(axis=1)],
            "per_column": per_column, "share_after_step": self.after_share,
            "top_cells": [{"step": s, "column": c, "attribution": a}
                          for s, c, a in self.top_cells(names)],
        }  # fmt: skip

    def summary(self, names: list[str], unit: str) -> str:
        ig = self.integrated
        lines = [
            f"step {self.step} ({unit}): {self.explained} = {self.probability:.3f}; log-odds "
            f"{ig.output:+.3f} against {ig.baseline_output:+.3f} at the training mean "
            f"(delta {ig.convergence_delta:+.2g}); {100 * self.after_share:.1f} % of the "
            "attribution on later steps",
            "inputs contributing most (step, column, log-odds):",
        ]
        lines += [f"  {s:5d}  {c:28s} {a:+.3f}" for s, c, a in self.top_cells(names)]
        return "\n".join(lines)


def default_step(prob: np.ndarray) -> int:
    """The step to explain when none is chosen: the highest risk (two classes: the second
    class's probability), otherwise the least confident step."""
    if prob.shape[1] == 2:
        return int(np.argmax(prob[:, 1]))
    return int(np.argmin(prob.max(axis=1)))


def explained_index(prob: np.ndarray, step: int) -> int:
    """Two classes: the second (the risk); more: the class predicted at ``step``."""
    return 1 if prob.shape[1] == 2 else int(np.argmax(prob[step]))


def target_step_attributions(
    members,
    values: np.ndarray,
    prob: np.ndarray,
    step: int,
    *,
    sample_id: int,
    class_names: list[str],
    n_steps: int = 64,
) -> TargetStep:
    """Integrated gradients of the log-odds at ``step`` for one sequence ``values`` (T, F).

    ``prob``: the bundle's ``(T, K)`` probabilities of the sequence (for the explained
    class and the reported probability).
    """
    if not 0 <= step < len(prob):
        raise ValueError(
            f"--step must be in [0, {len(prob) - 1}] for sample {sample_id}, got {step}"
        )
    k = explained_index(prob, step)
    lengths = torch.tensor([len(values)])

    def logits_of(x: torch.Tensor) -> list[torch.Tensor]:
        return [m(x, lengths.expand(len(x)))[:, step] for m in members]  # each (B, K)

    forward = LogOdds(logits_of, "multiclass", k)
    integrated = integrate(forward, (torch.as_tensor(values).float()[None],), n_steps=n_steps)
    return TargetStep(
        sample_id=int(sample_id), step=int(step), class_index=k,
        explained=f"p({class_names[k]})", probability=float(prob[step, k]),
        cells=integrated.attributions[0], integrated=integrated,
    )  # fmt: skip
