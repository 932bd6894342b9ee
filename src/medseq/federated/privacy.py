"""Per-site differential privacy: DP-SGD with Opacus, and the epsilon it spends.

The model's fused ``nn.GRU``/``nn.LSTM`` cannot give per-sample gradients, so
:func:`make_dp_model` lets Opacus' own ``ModuleValidator.fix`` swap it for
``opacus.layers.DPGRU``/``DPLSTM`` (same sizes, same weights): the medseq model is built as
usual and then made private, with no DP-specific model code in ``medseq.models``.

Accounting (Rényi DP, Mironov 2017, as Opacus does it): one site's privacy loss covers
every local epoch of every round it takes part in. :func:`plan_budget` calibrates the noise
multiplier once, for ``rounds * local_epochs`` epochs with Poisson sampling of rate
``batch_size / n_train``, so that the whole run stays within ``target_epsilon`` at
``target_delta``; :func:`spent_epsilon` reports what the steps taken so far have used.
The guarantee is per site and per record (example-level DP of the site's patients against
anyone who sees the site's updates, the server included).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from medseq.federated.config import PrivacyConfig
from medseq.training import TrainConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DPBudget:
    """The noise that keeps a site within its target over the whole run."""

    noise_multiplier: float
    sample_rate: float
    steps_per_epoch: int
    delta: float
    target_epsilon: float
    max_grad_norm: float


def make_dp_model(model: nn.Module) -> nn.Module:
    """Swap the recurrent layers for Opacus' DP layers; raise if anything stays unsupported."""
    from opacus.validators import ModuleValidator

    fixed = ModuleValidator.fix(model)
    errors = ModuleValidator.validate(fixed, strict=False)
    if errors:
        raise ValueError(f"model is not DP-SGD compatible after Opacus' fix: {errors}")
    return fixed


def plan_budget(privacy: PrivacyConfig, n_train: int, batch_size: int, epochs: int) -> DPBudget:
    """Noise multiplier for ``epochs`` epochs of ``n_train`` records within the target."""
    from opacus.accountants.utils import get_noise_multiplier

    if n_train < 2:
        raise ValueError(f"DP-SGD needs at least 2 training subjects at a site, got {n_train}")
    sample_rate = min(1.0, batch_size / n_train)
    steps_per_epoch = int(np.ceil(1.0 / sample_rate))
    delta = privacy.target_delta if privacy.target_delta is not None else 1.0 / (10 * n_train)
    sigma = get_noise_multiplier(
        target_epsilon=privacy.target_epsilon,
        target_delta=delta,
        sample_rate=sample_rate,
        steps=steps_per_epoch * epochs,
        accountant="rdp",
    )
    return DPBudget(
        float(sigma),
        sample_rate,
        steps_per_epoch,
        delta,
        privacy.target_epsilon,
        privacy.max_grad_norm,
    )


def spent_epsilon(budget: DPBudget, epochs_done: int) -> float:
    """Epsilon (at the budget's delta) after ``epochs_done`` local epochs."""
    from opacus.accountants import RDPAccountant

    if epochs_done <= 0:
        return 0.0
    accountant = RDPAccountant()
    accountant.history = [
        (budget.noise_multiplier, budget.sample_rate, budget.steps_per_epoch * epochs_done)
    ]
    return float(accountant.get_epsilon(delta=budget.delta))


def train_dp_local(
    model: nn.Module,
    train: dict[str, np.ndarray],
    config: TrainConfig,
    budget: DPBudget,
    epochs: int,
) -> float:
    """DP-SGD epochs in place on a model from :func:`make_dp_model`; mean loss of the last epoch.

    Each step: Poisson-sampled batch, per-sample gradients clipped to ``max_grad_norm``,
    Gaussian noise of ``noise_multiplier * max_grad_norm`` added to their sum (Abadi et al.
    2016). The loss is class-weighted BCE like the Trainer's default for binary tasks.
    """
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    from medseq.training.batching import model_input_names, to_tensors
    from medseq.training.optim import build_optimizer

    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    names = model_input_names(model, train)
    tensors = to_tensors(train, names, task="binary", where="train")
    y = tensors["y"]
    loader = DataLoader(
        TensorDataset(*[tensors[n] for n in names], y), batch_size=config.batch_size
    )
    positive = float(y.mean())
    pos_weight = torch.tensor((1 - positive) / max(positive, 1e-6))
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    model.train()
    optimizer = build_optimizer(config, model)
    engine = PrivacyEngine(accountant="rdp")
    private, optimizer, loader = engine.make_private(
        module=model,
        optimizer=optimizer,
        data_loader=loader,
        noise_multiplier=budget.noise_multiplier,
        max_grad_norm=budget.max_grad_norm,
        poisson_sampling=True,
    )
    mean_loss = float("nan")
    for _ in range(epochs):
        total, count = 0.0, 0
        for *inputs, target in loader:
            if target.numel() == 0:
                continue
            optimizer.zero_grad(set_to_none=True)
            logits = private(**dict(zip(names, inputs, strict=True)))[:, 0]
            loss = loss_fn(logits, target)
            loss.backward()
            optimizer.step()
            total, count = total + float(loss) * len(target), count + len(target)
        mean_loss = total / max(count, 1)
    private.remove_hooks()  # the plain module goes back to the caller
    model.eval()
    return mean_loss
