"""Training: the :class:`Trainer`, its :class:`TrainConfig`, losses, penalties, checkpoints.

``Trainer(config).fit(model, train, val, resume=False)`` trains any model following the
forward contract ``forward(values, mask, delta, lengths, static=None) -> logits`` on the
feature dicts of ``medseq.features``; ``Trainer.predict`` applies it.
"""

from __future__ import annotations

from medseq.training.checkpoint import (
    Checkpoint,
    load_checkpoint,
    save_checkpoint,
    unwrap_model,
)
from medseq.training.config import TrainConfig
from medseq.training.losses import (
    FocalLoss,
    MaskedBCEWithLogitsLoss,
    MaskedCrossEntropyLoss,
    MaskedMSELoss,
    build_loss,
)
from medseq.training.regularization import l1_penalty, l2_penalty, regularization_penalty
from medseq.training.result import FitResult
from medseq.training.trainer import Trainer

__all__ = [
    "Checkpoint",
    "FitResult",
    "FocalLoss",
    "MaskedBCEWithLogitsLoss",
    "MaskedCrossEntropyLoss",
    "MaskedMSELoss",
    "TrainConfig",
    "Trainer",
    "build_loss",
    "l1_penalty",
    "l2_penalty",
    "load_checkpoint",
    "regularization_penalty",
    "save_checkpoint",
    "unwrap_model",
]
