"""Explicit L1 and L2 penalties added to the loss.

These are separate from the optimizer's ``weight_decay`` on purpose: AdamW's decay is
decoupled from the gradient and Adam's is scaled by the adaptive step, so neither is the
textbook ``l2 * sum w**2``. Here the penalty is part of the loss, identical for every
optimizer, and a config that sets ``l2`` means exactly that.

Only weight matrices and kernels (parameters with two or more dimensions) are penalised;
biases, layer-norm gains and the like are not, as is customary: shrinking a bias toward zero
does not reduce model capacity, it only shifts the output.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn


def penalized_parameters(model: nn.Module) -> Iterator[nn.Parameter]:
    """Trainable parameters with ``ndim >= 2`` (weights, not biases)."""
    for param in model.parameters():
        if param.requires_grad and param.ndim >= 2:
            yield param


def l1_penalty(model: nn.Module) -> torch.Tensor:
    """``sum |w|`` over the penalised parameters; encourages sparse weights."""
    terms = [p.abs().sum() for p in penalized_parameters(model)]
    return torch.stack(terms).sum() if terms else torch.zeros(())


def l2_penalty(model: nn.Module) -> torch.Tensor:
    """``sum w**2`` over the penalised parameters (no factor 1/2)."""
    terms = [p.pow(2).sum() for p in penalized_parameters(model)]
    return torch.stack(terms).sum() if terms else torch.zeros(())


def regularization_penalty(
    model: nn.Module, l1: float = 0.0, l2: float = 0.0
) -> torch.Tensor | None:
    """``l1 * sum|w| + l2 * sum w**2``, or None when both strengths are zero.

    Returning None (rather than a zero tensor) lets the training step skip the extra
    autograd work entirely in the common unregularised case.
    """
    if l1 < 0 or l2 < 0:
        raise ValueError(f"penalty strengths must be >= 0, got l1={l1!r}, l2={l2!r}")
    penalty = None
    if l1 > 0:
        penalty = l1 * l1_penalty(model)
    if l2 > 0:
        term = l2 * l2_penalty(model)
        penalty = term if penalty is None else penalty + term
    return penalty
