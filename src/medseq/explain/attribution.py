"""Integrated gradients (Captum) per variable × time step, for any medseq model.

Sundararajan, Taly & Yan (2017), "Axiomatic attribution for deep networks", ICML. For an
input ``x``, a baseline ``x'`` and the model output ``f``:

.. math::
    \\mathrm{IG}_i(x) = (x_i - x'_i) \\int_0^1
        \\frac{\\partial f(x' + \\alpha (x - x'))}{\\partial x_i} \\, d\\alpha

and the attributions add up to ``f(x) - f(x')`` (completeness). Captum approximates the
integral with ``n_steps`` Gauss-Legendre points and reports how far the sum is from
``f(x) - f(x')``: the **convergence delta**, which medseq always returns so a reader can
tell a faithful map from an under-resolved one (raise ``n_steps`` when it is large).

What is explained: the **logit** of the bundle's risk (for an ensemble, the logit of the
members' mean probability, so it is exactly the single model's logit when there is one
member; regression bundles: the mean output). Logits add up, probabilities saturate.

What is attributed: ``values`` (N, T, F) and, when the model has one, ``static`` (N, S).
``mask``, ``delta`` and ``lengths`` are held fixed (Captum's ``additional_forward_args``).
The baseline is 0 for both, which after the featurizer's normalisation is the training
mean, i.e. what the featurizer imputes for a variable never observed: "an average,
unremarkable patient". Padding steps (``t >= lengths``) get exactly 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from medseq.features.base import FeaturizerDescription, describe, time_grid_gap

_EPS = 1e-6


class BundleOutput(nn.Module):
    """The scalar a bundle's prediction is made of, as one differentiable module.

    ``forward(values, static, mask, delta, lengths) -> (B, 1)``: the logit of the mean
    member probability (binary) or the mean member output (regression). The argument
    order puts the attributed tensors first, as Captum expects.
    """

    def __init__(self, members: Sequence[nn.Module], task: str = "binary") -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.task = task
        self.eval()

    def forward(
        self, values: Tensor, static: Tensor | None, mask: Tensor, delta: Tensor, lengths: Tensor
    ) -> Tensor:
        outputs = [
            m(values=values, mask=mask, delta=delta, lengths=lengths, static=static)
            for m in self.members
        ]  # each (B, 1)
        if self.task != "binary":
            return torch.stack(outputs).mean(dim=0)
        if len(outputs) == 1:
            return outputs[0]
        mean = torch.stack([torch.sigmoid(o) for o in outputs]).mean(dim=0)
        return torch.logit(mean.clamp(_EPS, 1.0 - _EPS))


@dataclass(frozen=True)
class Attribution:
    """Attributions of N stays, with the numbers needed to trust them.

    Attributes
    ----------
    values : ndarray of shape (N, T, F)
        Contribution of each variable at each time step to the explained output.
    static : ndarray of shape (N, S) or None
    output, baseline_output : ndarray of shape (N,)
        ``f(x)`` and ``f(x')`` on the explained scale (logit for binary bundles).
    convergence_delta : ndarray of shape (N,)
        ``sum(attributions) - (f(x) - f(x'))``; NaN for methods without completeness.
    feature_names, static_names : list of str
    lengths : ndarray of shape (N,)
    step_hours : float
        Width of one time step, for axes in hours.
    method : str
    """

    values: np.ndarray
    static: np.ndarray | None
    output: np.ndarray
    baseline_output: np.ndarray
    convergence_delta: np.ndarray
    feature_names: list[str]
    static_names: list[str]
    lengths: np.ndarray
    step_hours: float = 1.0
    method: str = "integrated_gradients"
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def relative_delta(self) -> np.ndarray:
        """``|delta| / max(|f(x) - f(x')|, 1e-6)``: the share of the effect left unexplained."""
        gap = np.abs(self.output - self.baseline_output)
        return np.abs(self.convergence_delta) / np.maximum(gap, _EPS)

    def total(self) -> np.ndarray:
        """Sum of all attributions per stay, shape (N,)."""
        total = self.values.reshape(len(self.values), -1).sum(axis=1)
        return total if self.static is None else total + self.static.sum(axis=1)


def _tensors(features: dict[str, np.ndarray]) -> dict[str, Tensor]:
    keys = ("values", "mask", "delta", "lengths", "static")
    return {k: torch.as_tensor(np.asarray(features[k])) for k in keys if k in features}


def _inputs(
    t: dict[str, Tensor], use_static: bool
) -> tuple[tuple[Tensor, ...], tuple[Tensor | None, ...]]:
    """Attributed inputs and held-fixed args; together always ``forward``'s five arguments."""
    if use_static:
        return (t["values"], t["static"]), (t["mask"], t["delta"], t["lengths"])
    return (t["values"],), (t.get("static"), t["mask"], t["delta"], t["lengths"])


def time_grid(bundle) -> FeaturizerDescription:
    """The featurizer's description, refusing a bundle without a time grid of named
    variables (attributions here are per variable and hour) with the reason."""
    description = describe(bundle.featurizer)
    gap = time_grid_gap(description)
    if gap is not None:
        raise ValueError(
            f"attributions per variable and hour need a time grid of named variables, and "
            f"{gap} (medseq explain picks the explanation that fits the model kind)"
        )
    return description


def integrated_gradients(
    bundle,
    features: dict[str, np.ndarray],
    *,
    n_steps: int = 32,
    batch_size: int = 64,
    include_static: bool = True,
) -> Attribution:
    """Integrated gradients of a bundle's output for every stay in ``features``.

    Parameters
    ----------
    bundle : medseq.bundle.Bundle
    features : dict of ndarray
        The bundle featurizer's output (``values``, ``mask``, ``delta``, ``lengths``,
        ``static``) for N stays.
    n_steps : int, default=32
        Integration points; the convergence delta tells whether they were enough.
    batch_size : int, default=64
        Stays per Captum call (memory grows with ``batch_size * n_steps``).
    include_static : bool, default=True
        Also attribute the static vector (when the model takes one).

    Returns
    -------
    Attribution
    """
    from captum.attr import IntegratedGradients

    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 2:
        raise ValueError(f"n_steps must be an int >= 2, got {n_steps!r}")
    grid = time_grid(bundle)
    forward = BundleOutput(bundle.members, bundle.task)
    use_static = include_static and "static" in features and features["static"].shape[1] > 0
    ig = IntegratedGradients(forward)
    parts: dict[str, list[np.ndarray]] = {"values": [], "static": [], "delta": [], "out": []}
    n = len(features["lengths"])
    for start in range(0, n, batch_size):
        batch = _tensors({k: v[start : start + batch_size] for k, v in features.items()})
        inputs, extra = _inputs(batch, use_static)
        attrs, delta = ig.attribute(
            inputs,
            baselines=tuple(torch.zeros_like(x) for x in inputs),
            target=0,
            additional_forward_args=extra,
            n_steps=n_steps,
            return_convergence_delta=True,
        )
        parts["values"].append(attrs[0].detach().numpy())
        if use_static:
            parts["static"].append(attrs[1].detach().numpy())
        parts["delta"].append(delta.detach().numpy())
        parts["out"].append(_outputs(forward, inputs, extra))
    out = np.concatenate(parts["out"])
    return Attribution(
        values=np.concatenate(parts["values"]),
        static=np.concatenate(parts["static"]) if use_static else None,
        output=out[:, 0],
        baseline_output=out[:, 1],
        convergence_delta=np.concatenate(parts["delta"]),
        feature_names=grid.names("F"),
        static_names=grid.names("S") if use_static else [],
        lengths=np.asarray(features["lengths"]),
        step_hours=grid.hours()[0],
        extra={"n_steps": float(n_steps)},
    )


@torch.no_grad()
def _outputs(forward: BundleOutput, inputs: tuple[Tensor, ...], extra: tuple) -> np.ndarray:
    """``(B, 2)``: the output at the input and at the all-zero baseline."""
    zeros = tuple(torch.zeros_like(x) for x in inputs)
    return torch.cat([forward(*inputs, *extra), forward(*zeros, *extra)], dim=1).numpy()
