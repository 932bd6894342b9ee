"""The one scalar every per-step explanation attributes, and Captum's integrated gradients on it.

Beat-feature, token and per-step models all end in logits of several classes, labels or
steps, and a bundle may hold an ensemble. The explained scalar is the **log-odds of one
class** under the bundle's own probability (the members' mean probability):

.. math::
    f(x) = \\log \\bar p_c(x) - \\log (1 - \\bar p_c(x)), \\qquad
    \\bar p_c = \\frac{1}{M} \\sum_m p^{(m)}_c

with :math:`p = \\sigma(\\text{logit})` for binary and multilabel bundles and
:math:`p = \\mathrm{softmax}(\\text{logits})` for multiclass ones. For one binary member it is
the logit; log-odds add up where probabilities saturate, so the attributions of integrated
gradients (Sundararajan et al. 2017) sum to ``f(x) - f(baseline)`` on a readable scale.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

_EPS = 1e-6


def class_log_odds(logits: Sequence[Tensor], task: str, target: int) -> Tensor:
    """``(B, 1)`` log-odds of class ``target`` of the members' mean probability.

    ``logits``: one ``(B, K)`` tensor per member (``K = 1`` for a binary bundle).
    """
    if task == "multiclass":
        probs = [torch.softmax(z, dim=-1)[:, target] for z in logits]
    elif task in ("binary", "multilabel"):
        probs = [torch.sigmoid(z[:, target]) for z in logits]
    else:
        raise ValueError(f"log-odds explain classes or labels; this bundle's task is {task!r}")
    mean = torch.stack(probs).mean(dim=0).clamp(_EPS, 1.0 - _EPS)
    return (torch.log(mean) - torch.log1p(-mean))[:, None]


class LogOdds(nn.Module):
    """``forward(*inputs, *extra) -> (B, 1)``: :func:`class_log_odds` of ``logits_of``'s
    member logits, as a module Captum can call (attributed inputs first)."""

    def __init__(self, logits_of: Callable[..., list[Tensor]], task: str, target: int) -> None:
        super().__init__()
        self.logits_of, self.task, self.target = logits_of, task, target

    def forward(self, *args: Tensor) -> Tensor:
        return class_log_odds(self.logits_of(*args), self.task, self.target)


@dataclass(frozen=True)
class Integrated:
    """Integrated gradients of one sample: attributions per input, and how far to trust them.

    Attributes
    ----------
    attributions : tuple of ndarray
        One per attributed input, without the batch dimension.
    output, baseline_output : float
        ``f(x)`` and ``f(baseline)`` (log-odds).
    convergence_delta : float
        ``sum(attributions) - (f(x) - f(baseline))``: small when ``n_steps`` sufficed.
    """

    attributions: tuple[np.ndarray, ...]
    output: float
    baseline_output: float
    convergence_delta: float

    @property
    def relative_delta(self) -> float:
        """``|delta| / max(|f(x) - f(baseline)|, 1e-6)``."""
        gap = abs(self.output - self.baseline_output)
        return abs(self.convergence_delta) / max(gap, _EPS)


def integrate(
    forward: nn.Module,
    inputs: tuple[Tensor, ...],
    extra: tuple = (),
    *,
    n_steps: int = 64,
) -> Integrated:
    """Captum's integrated gradients of ``forward`` for one sample, from an all-zero baseline.

    ``inputs`` are the attributed tensors (batch of one), ``extra`` the arguments held
    fixed (lengths, tokens). Zero is the training mean of a z-scored input, "nothing
    observed" for a flag, and the padding embedding for tokens.
    """
    from captum.attr import IntegratedGradients

    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 2:
        raise ValueError(f"n_steps must be an int >= 2, got {n_steps!r}")
    if any(len(x) != 1 for x in inputs):
        raise ValueError(f"integrate explains one sample, got batches {[len(x) for x in inputs]}")
    baselines = tuple(torch.zeros_like(x) for x in inputs)
    attrs, delta = IntegratedGradients(forward).attribute(
        inputs,
        baselines=baselines,
        additional_forward_args=extra or None,
        n_steps=n_steps,
        return_convergence_delta=True,
    )
    with torch.no_grad():
        out = float(forward(*inputs, *extra)[0, 0])
        base = float(forward(*baselines, *extra)[0, 0])
    return Integrated(
        attributions=tuple(a.detach()[0].numpy() for a in attrs),
        output=out,
        baseline_output=base,
        convergence_delta=float(delta.detach()[0]),
    )


def explained_class(prob: np.ndarray, task: str, names: Sequence[str], target: str | None) -> int:
    """The class (or label) index to explain: ``target`` by name, else the most probable
    (for a binary bundle, the single output). ``prob``: ``(K,)`` of one sample."""
    if task == "binary":
        return 0
    if target is not None:
        if target not in names:
            raise ValueError(f"--target {target!r} is not one of this bundle's classes {names}")
        return list(names).index(target)
    return int(np.argmax(prob))


def explained_name(task: str, names: Sequence[str], k: int) -> str:
    """``"risk"`` for a binary bundle, ``"p(<class>)"`` otherwise."""
    return "risk" if task == "binary" else f"p({names[k]})"


def read_sample(
    bundle_dir: str | os.PathLike, data_path: str | os.PathLike, sample_id: int
) -> tuple[Any, Any, Any, np.ndarray]:
    """``(bundle, data, labels, ids)``: the bundle, ``data_path`` read with its dataset's
    reader, the task's labels and ``ids = [sample_id]``; an unknown id is an error naming a
    few known ones."""
    from medseq.bundle import load_bundle
    from medseq.experiment.data import read_set

    bundle = load_bundle(bundle_dir)
    data = read_set(bundle.dataset, data_path)
    labels = bundle.spec().labels(bundle.dataset_task, data)
    if int(sample_id) not in labels.index:
        raise ValueError(
            f"{data_path}: no sample_id {sample_id} in dataset {bundle.dataset!r} "
            f"(e.g. {labels.index[:5].tolist()})"
        )
    return bundle, data, labels, np.array([int(sample_id)])


def write_files(out_dir: Path, files: Mapping[str, bytes | str]) -> list[Path]:
    """Write ``{file name: PNG bytes or JSON text}`` under ``out_dir`` (created)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in files.items():
        path = out_dir / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        written.append(path)
    return written
