"""What one ``Trainer.fit`` works on and how far it got: the part a checkpoint saves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

from medseq.training import checkpoint as ckpt
from medseq.training.distributed import DistContext
from medseq.training.optim import Scheduler


@dataclass
class RunState:
    """Everything one fit works on, and its progress.

    ``model`` is what the loop trains (the DDP wrapper under torchrun) and ``module`` the
    plain model the caller passed, used for validation and saved in checkpoints.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Scheduler | None
    loss_fn: nn.Module
    train: dict[str, torch.Tensor]
    val: dict[str, torch.Tensor]
    inputs: tuple[str, ...]
    device: torch.device
    module: nn.Module
    dist: DistContext | None = None
    epoch: int = 0
    best_score: float | None = None
    best_epoch: int | None = None
    best_model: dict[str, torch.Tensor] | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def writes_files(self) -> bool:
        """Only one process writes checkpoints: the only one, or rank 0 under torchrun."""
        return self.dist is None or self.dist.is_main

    def to_checkpoint(self, config_json: str) -> ckpt.Checkpoint:
        """The checkpoint of the epochs completed so far (with this process's RNG states)."""
        return ckpt.Checkpoint(
            model=ckpt.model_state(self.model),
            optimizer=self.optimizer.state_dict(),
            scheduler=None if self.scheduler is None else self.scheduler.state_dict(),
            epoch=self.epoch,
            best_score=self.best_score,
            best_epoch=self.best_epoch,
            best_model=self.best_model,
            history=list(self.history),
            config_json=config_json,
            rng=ckpt.capture_rng_state(),
            stopped_early=self.stopped_early,
        )

    def restore(self, state: ckpt.Checkpoint) -> None:
        """Continue from ``state``: weights, optimizer, schedule, progress and RNG states."""
        ckpt.unwrap_model(self.model).load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        if self.scheduler is not None:
            self.scheduler.load_state_dict(cast(dict[str, Any], state.scheduler))
        self.epoch, self.history = state.epoch, list(state.history)
        self.best_score, self.best_epoch = state.best_score, state.best_epoch
        self.best_model, self.stopped_early = state.best_model, state.stopped_early
        ckpt.restore_rng_state(state.rng)
