"""Losses that leave out missing labels.

Every loss here takes logits (or raw outputs) and float labels in which NaN marks a label
that is unknown for that sample (later tasks, e.g. next-visit diagnoses, have them). Those
entries contribute nothing to the loss or its gradient; the loss is the mean over the
labelled entries only.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medseq.training.config import TrainConfig


def align(output: torch.Tensor, y: torch.Tensor, *, multiclass: bool = False) -> torch.Tensor:
    """Return ``output`` shaped like ``y``, or raise naming both shapes.

    A single-output model gives (B, 1) while a binary or scalar-regression label is (B,);
    that one case is squeezed. For multiclass, ``output`` stays (B, K) and ``y`` is (B,).
    """
    if multiclass:
        if output.ndim != 2 or y.ndim != 1 or output.shape[0] != y.shape[0]:
            raise ValueError(
                f"multiclass expects logits (B, K) and y (B,) of class indices, "
                f"got logits {tuple(output.shape)} and y {tuple(y.shape)}"
            )
        return output
    if output.ndim == 2 and y.ndim == 1 and output.shape[1] == 1:
        output = output[:, 0]
    if output.shape != y.shape:
        raise ValueError(
            f"model output {tuple(output.shape)} does not match y {tuple(y.shape)}; "
            "set the model's n_outputs to the number of label columns"
        )
    return output


def _masked_mean(elementwise: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    weights = observed.to(elementwise.dtype)
    return (elementwise * weights).sum() / weights.sum().clamp_min(1.0)


class MaskedBCEWithLogitsLoss(nn.Module):
    """Binary cross-entropy on logits, mean over entries whose label is not NaN.

    Parameters
    ----------
    pos_weight : tensor of shape () or (K,), optional
        Multiplies the positive term, as in :class:`torch.nn.BCEWithLogitsLoss`.
    """

    pos_weight: torch.Tensor | None  # buffer, registered in __init__

    def __init__(self, pos_weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = align(logits, y)
        observed = ~torch.isnan(y)
        target = torch.where(observed, y, torch.zeros_like(y))
        loss = F.binary_cross_entropy_with_logits(
            logits, target, pos_weight=self.pos_weight, reduction="none"
        )
        return _masked_mean(loss, observed)


class FocalLoss(nn.Module):
    r"""Focal loss on logits (Lin et al., "Focal Loss for Dense Object Detection", 2017).

    .. math:: FL(p_t) = -\alpha_t (1 - p_t)^\gamma \log(p_t)

    with :math:`p_t = p` for positives and :math:`1 - p` for negatives, and
    :math:`\alpha_t = \alpha` for positives and :math:`1 - \alpha` for negatives. It
    down-weights easy, well-classified examples, which helps when positives are rare.
    ``gamma=0, alpha=None`` is plain BCE. NaN labels are left out.
    """

    def __init__(self, gamma: float = 2.0, alpha: float | None = 0.25) -> None:
        super().__init__()
        self.gamma = float(gamma)
        self.alpha = alpha

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = align(logits, y)
        observed = ~torch.isnan(y)
        target = torch.where(observed, y, torch.zeros_like(y))
        ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p = torch.sigmoid(logits)
        p_t = p * target + (1.0 - p) * (1.0 - target)
        loss = ce * (1.0 - p_t) ** self.gamma
        if self.alpha is not None:
            loss = loss * (self.alpha * target + (1.0 - self.alpha) * (1.0 - target))
        return _masked_mean(loss, observed)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, alpha={self.alpha}"


class MaskedMSELoss(nn.Module):
    """Mean squared error over the entries whose target is not NaN."""

    def forward(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        output = align(output, y)
        observed = ~torch.isnan(y)
        diff = torch.where(observed, output - y, torch.zeros_like(output))
        return _masked_mean(diff**2, observed)


class MaskedCrossEntropyLoss(nn.Module):
    """Multiclass cross-entropy; ``y`` holds class indices as floats, NaN where unknown.

    Logits ``(B, K)`` with ``y`` ``(B,)``, or per-step logits ``(B, T, K)`` with ``y``
    ``(B, T)`` (sequence labelling; NaN marks unlabelled steps and padding).
    """

    weight: torch.Tensor | None  # buffer, registered in __init__

    def __init__(self, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if logits.ndim == 3 and y.ndim == 2 and logits.shape[:2] == y.shape:
            # Sequence labelling: one label per step (B, T), logits (B, T, K).
            logits, y = logits.reshape(-1, logits.shape[2]), y.reshape(-1)
        logits = align(logits, y, multiclass=True)
        observed = ~torch.isnan(y)
        target = torch.where(observed, y, torch.full_like(y, -100.0)).long()
        if observed.any():
            k = logits.shape[1]
            bad = observed & ((target < 0) | (target >= k))
            if bad.any():
                raise ValueError(f"multiclass labels must be in [0, {k}), got {y[bad][0].item()}")
        if self.weight is not None and self.weight.shape[0] != logits.shape[1]:
            raise ValueError(
                f"class_weight has {self.weight.shape[0]} classes (from the training labels) "
                f"but the model gives {logits.shape[1]} logits"
            )
        if not observed.any():
            return logits.sum() * 0.0
        return F.cross_entropy(logits, target, weight=self.weight, ignore_index=-100)


def balanced_pos_weight(y: np.ndarray) -> np.ndarray:
    """n_negative / n_positive per label column, ignoring NaN labels.

    Returns shape () for y of shape (N,) and (K,) for (N, K). Raises if a column has no
    positive or no negative label, because the weight would be 0 or infinite.
    """
    y = np.asarray(y, dtype=np.float64)
    observed = ~np.isnan(y)
    n_pos = np.where(observed, y == 1, False).sum(axis=0)
    n_neg = np.where(observed, y == 0, False).sum(axis=0)
    if np.any(n_pos == 0) or np.any(n_neg == 0):
        raise ValueError(
            "pos_weight='balanced' needs positive and negative training labels in every "
            f"column, got n_positive={np.atleast_1d(n_pos).tolist()}, "
            f"n_negative={np.atleast_1d(n_neg).tolist()}"
        )
    return (n_neg / n_pos).astype(np.float32)


def balanced_class_weight(y: np.ndarray, n_classes: int) -> np.ndarray:
    """scikit-learn's rule ``n_samples / (n_classes * count_k)``, ignoring NaN labels."""
    y = np.asarray(y, dtype=np.float64)
    y = y[~np.isnan(y)].astype(np.int64)
    counts = np.bincount(y, minlength=n_classes)
    if np.any(counts == 0):
        raise ValueError(
            f"class_weight='balanced' needs every class in the training labels, "
            f"got counts {counts.tolist()}"
        )
    return (len(y) / (n_classes * counts)).astype(np.float32)


def build_loss(config: TrainConfig, y_train: np.ndarray) -> nn.Module:
    """The loss module named by ``config``, with weights computed from the training labels."""
    name = config.loss_name
    if name == "bce":
        weight: str | float | np.ndarray | None = config.pos_weight
        if weight == "balanced":
            weight = balanced_pos_weight(y_train)
        tensor = None if weight is None else torch.as_tensor(weight, dtype=torch.float32)
        return MaskedBCEWithLogitsLoss(pos_weight=tensor)
    if name == "focal":
        return FocalLoss(gamma=config.focal_gamma, alpha=config.focal_alpha)
    if name == "mse":
        return MaskedMSELoss()
    class_weight: torch.Tensor | None = None
    if config.class_weight in ("balanced", "sqrt_balanced"):
        n_classes = int(np.nanmax(y_train)) + 1
        balanced = balanced_class_weight(y_train, n_classes)
        if config.class_weight == "sqrt_balanced":
            balanced = np.sqrt(balanced)
        class_weight = torch.as_tensor(balanced)
    return MaskedCrossEntropyLoss(weight=class_weight)
