"""Optimizers, learning-rate schedules and gradient clipping named by a :class:`TrainConfig`."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim import lr_scheduler

from medseq.training.config import TrainConfig

Scheduler = lr_scheduler.LRScheduler | lr_scheduler.ReduceLROnPlateau


def build_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Adam, AdamW, RMSprop or SGD over the model's trainable parameters.

    ``weight_decay`` is the optimizer's own (coupled for Adam/RMSprop/SGD, decoupled for
    AdamW); the explicit ``l1``/``l2`` penalties are added to the loss instead.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    lr, wd = config.lr, config.weight_decay
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=wd, momentum=config.momentum)
    return torch.optim.SGD(params, lr=lr, weight_decay=wd, momentum=config.momentum)


def build_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer) -> Scheduler | None:
    """The per-epoch schedule named by ``config.scheduler``; None for ``"none"``.

    Cosine anneals from ``lr`` to ``min_lr`` over ``epochs``; step multiplies by
    ``lr_gamma`` every ``lr_step_epochs``; plateau multiplies by ``lr_gamma`` after
    ``lr_plateau_patience`` epochs without improvement of the monitored metric.
    """
    if config.scheduler == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=config.min_lr)
    if config.scheduler == "step":
        return lr_scheduler.StepLR(
            optimizer, step_size=config.lr_step_epochs, gamma=config.lr_gamma
        )
    if config.scheduler == "plateau":
        return lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode=config.monitor_mode,
            factor=config.lr_gamma,
            patience=config.lr_plateau_patience,
            min_lr=config.min_lr,
        )
    return None


def step_scheduler(scheduler: Scheduler | None, monitored: float) -> None:
    """Advance one epoch; the plateau schedule is told the monitored value."""
    if scheduler is None:
        return
    if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
        scheduler.step(monitored)
    else:
        scheduler.step()


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """Learning rate of the first parameter group."""
    return float(optimizer.param_groups[0]["lr"])


def clip_gradients(model: nn.Module, config: TrainConfig) -> None:
    """Clip by value (elementwise) and then by global norm, as configured.

    Clipping keeps the exploding gradients of recurrent networks from destroying the
    weights in one step (Pascanu et al., "On the difficulty of training recurrent neural
    networks", 2013).
    """
    if config.clip_grad_value is not None:
        nn.utils.clip_grad_value_(model.parameters(), config.clip_grad_value)
    if config.clip_grad_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
