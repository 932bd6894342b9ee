"""One site's local work in a round: featurise, train from the global weights, score.

Used by the Flower client (:mod:`medseq.federated.client`) and, without Flower, by the
benchmarks' "site alone" and "centralised" rows, so every row trains with the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from medseq.features import ICUFeaturizer
from medseq.models import build_model
from medseq.models.registry import model_config_from_dict
from medseq.training import TrainConfig, Trainer


def featurise(featurizer: ICUFeaturizer, raw: Any, ids: np.ndarray, labels: Any) -> dict:
    """Model inputs plus ``y`` for ``ids`` of a site's own tables."""
    out = featurizer.transform(raw.events, raw.static, ids)
    out["y"] = labels.reindex(ids).to_numpy(dtype=np.float32)
    return out


def build_site_model(model: dict[str, Any], featurizer: ICUFeaturizer, *, seed: int) -> nn.Module:
    """The configured model, sized by the featurizer, initialised from ``seed``."""
    sizes = {"input_size": featurizer.n_features, "static_size": featurizer.n_static}
    clash = sorted(set(sizes) & set(model))
    if clash:
        raise ValueError(f"[model]: {clash} are inferred from the data; remove them")
    config = model_config_from_dict({"kind": "rnn_classifier", "n_outputs": 1, **model, **sizes})
    torch.manual_seed(seed)
    return build_model(config)


def get_weights(model: nn.Module) -> list[np.ndarray]:
    """The model's state as arrays, in ``state_dict`` order (what Flower exchanges)."""
    return [v.detach().cpu().numpy().copy() for v in model.state_dict().values()]


def set_weights(model: nn.Module, weights: list[np.ndarray]) -> None:
    """Load arrays from :func:`get_weights` (same architecture) into ``model``."""
    keys = list(model.state_dict())
    if len(keys) != len(weights):
        raise ValueError(f"got {len(weights)} weight arrays for a model with {len(keys)} tensors")
    state = {k: torch.as_tensor(np.asarray(w)) for k, w in zip(keys, weights, strict=True)}
    model.load_state_dict(state, strict=True)


def proximal_term(
    global_weights: list[np.ndarray], mu: float
) -> Callable[[nn.Module], torch.Tensor]:
    """FedProx's ``mu / 2 * ||w - w_global||^2`` over the trainable parameters (Li et al. 2020)."""
    anchors = [torch.as_tensor(np.asarray(w), dtype=torch.float32) for w in global_weights]

    def term(model: nn.Module) -> torch.Tensor:
        params = dict(model.named_parameters())
        total = torch.zeros(())
        for (name, _), anchor in zip(model.state_dict().items(), anchors, strict=True):
            if name in params and params[name].requires_grad:
                total = total + (params[name] - anchor.to(params[name].device)).pow(2).sum()
        return 0.5 * mu * total

    return term


def local_train_config(train: dict[str, Any], *, epochs: int, seed: int) -> TrainConfig:
    """The ``[train]`` section as the config of one site's local epochs (no early stop)."""
    raw = {"monitor": "auroc", "progress": False, "num_threads": 1, **train}
    raw.update(epochs=epochs, seed=seed, patience=None, checkpoint_dir=None, task="binary")
    return TrainConfig.from_dict(raw)


def train_local(
    model: nn.Module,
    train: dict[str, np.ndarray],
    val: dict[str, np.ndarray],
    config: TrainConfig,
    extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
) -> float:
    """Train in place from the current weights; returns the mean training loss of the last epoch."""
    result = Trainer(config, extra_loss=extra_loss).fit(model, train, val)
    return float(result.history[-1]["train_loss"])


def score(model: nn.Module, data: dict[str, np.ndarray], train: dict[str, Any]) -> dict[str, float]:
    """Validation/test loss and AUROC of ``model`` on ``data`` (labels in ``data['y']``)."""
    from sklearn.metrics import log_loss, roc_auc_score

    prob = predict(model, data, train)
    y = data["y"]
    loss = float(log_loss(y, prob, labels=[0, 1]))
    auroc = float(roc_auc_score(y, prob)) if len(np.unique(y)) == 2 else float("nan")
    return {"loss": loss, "auroc": auroc}


def predict(model: nn.Module, data: dict[str, np.ndarray], train: dict[str, Any]) -> np.ndarray:
    """Risk (N,) of every subject in ``data``, batched as in ``[train]``."""
    return Trainer(local_train_config(train, epochs=1, seed=0)).predict(model, data)
