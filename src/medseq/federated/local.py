"""One site's local work in a round: featurise, train from the global weights, score.

Everything dataset-shaped comes from the experiment's dataset spec: ``spec.transform``
featurises, ``spec.model_sizes`` sizes the model of whatever ``kind`` ``[model]`` names (the
model registry builds it), and the task type picks the loss and the AUROC. Used by the Flower
client (:mod:`medseq.federated.client`) and, without Flower, by the benchmarks' "site
alone" and "centralised" rows, so every row trains with the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from medseq.datasets.registry import DatasetSpec
from medseq.models import build_model
from medseq.models.registry import model_config_from_dict
from medseq.training import TrainConfig, Trainer


def featurise(spec: DatasetSpec, featurizer: Any, data: Any, ids: np.ndarray, labels: Any) -> dict:
    """Model inputs plus ``y`` ((N,) or (N, K) with NaN for missing labels) for ``ids``."""
    ids = np.asarray(ids, dtype=np.int64)
    out = dict(spec.transform(featurizer, data, ids))
    out["y"] = labels.loc[ids].to_numpy(dtype=np.float32)
    return out


def model_config(model: dict[str, Any], sizes: dict[str, Any]) -> Any:
    """``[model]`` (any registered ``kind``) plus the sizes the data fixes."""
    clash = sorted(set(sizes) & set(model))
    if clash:
        raise ValueError(f"[model]: {clash} are inferred from the data; remove them")
    return model_config_from_dict({**model, **sizes})


def build_site_model(config: Any, *, seed: int) -> nn.Module:
    """The model of ``config`` (from :func:`model_config`), initialised from ``seed``."""
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


def local_train_config(
    train: dict[str, Any], *, epochs: int, seed: int, task: str = "binary"
) -> TrainConfig:
    """The ``[train]`` section as the config of one site's local epochs (no early stop).

    The monitor (which of several local epochs is kept) defaults to AUROC where the task
    has one (binary, multilabel), else to the loss.
    """
    monitor = "auroc" if task in ("binary", "multilabel") else "loss"
    raw = {"monitor": monitor, "progress": False, "num_threads": 1, **train}
    raw.update(epochs=epochs, seed=seed, patience=None, checkpoint_dir=None, task=task)
    return TrainConfig.from_dict(raw)


def train_local(
    model: nn.Module,
    train: dict[str, np.ndarray],
    val: dict[str, np.ndarray],
    config: TrainConfig,
    extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
    augment: Any = None,
) -> float:
    """Train in place from the current weights; returns the mean training loss of the last epoch."""
    result = Trainer(config, extra_loss=extra_loss).fit(model, train, val, augment=augment)
    return float(result.history[-1]["train_loss"])


def score(
    model: nn.Module, data: dict[str, np.ndarray], train: dict[str, Any], task: str = "binary"
) -> dict[str, float]:
    """Validation/test loss and AUROC of ``model`` on ``data`` (labels in ``data['y']``).

    The AUROC is the task's: binary, or the mean one-vs-rest AUROC over the classes
    (multiclass) or label columns (multilabel) that hold both outcomes here; NaN when none
    does (a small label-skewed site), which the server's weighted mean then skips. A
    sequence-labelling task (multiclass ``y`` of shape (N, T), one class per step, NaN where
    unlabelled; ``prob`` (N, T, K)) is scored per labelled step (:func:`per_step`): the
    hourly AUROC of a per-hour model, not one label per sample.
    """
    prob = predict(model, data, train, task)
    return {"loss": log_loss(data["y"], prob, task), "auroc": mean_auroc(data["y"], prob, task)}


def is_per_step(y: np.ndarray, task: str) -> bool:
    """Whether ``y`` holds one class per step ((N, T) class indices of a multiclass task)."""
    return task == "multiclass" and np.asarray(y).ndim == 2


def per_step(y: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The labelled steps of a sequence-labelling task as samples: ``y`` (M,) and ``prob``
    (M, K) from ``y`` (N, T) with NaN where a step has no label and ``prob`` (N, T', K)
    (the first ``min(T, T')`` steps are compared)."""
    y, prob = np.asarray(y), np.asarray(prob)
    if prob.ndim != 3 or prob.shape[0] != y.shape[0]:
        raise ValueError(
            f"per-step labels {y.shape} need per-step probabilities (N, T, K) with the same N, "
            f"got {prob.shape}"
        )
    steps = min(y.shape[1], prob.shape[1])
    y, prob = y[:, :steps], prob[:, :steps]
    labelled = ~np.isnan(y)
    return y[labelled], prob[labelled]


def n_scored(y: np.ndarray, task: str) -> int:
    """How many labels a score averages over: the labelled steps of a per-step task, else
    the samples (the weight of a site's validation AUROC in the server's mean)."""
    if is_per_step(y, task):
        return int((~np.isnan(np.asarray(y))).sum())
    return len(y)


def _columns(y: np.ndarray, prob: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities as (N, K) one-vs-rest columns, NaN for missing labels."""
    if is_per_step(y, task):
        y, prob = per_step(y, prob)
    if task == "binary":
        return y.reshape(-1, 1).astype(float), prob.reshape(-1, 1)
    if task == "multiclass":
        k = prob.shape[1]
        return (y.reshape(-1, 1) == np.arange(k)).astype(float), prob
    return y.astype(float), prob


def mean_auroc(y: np.ndarray, prob: np.ndarray, task: str) -> float:
    """See :func:`score`."""
    from sklearn.metrics import roc_auc_score

    labels, probs = _columns(np.asarray(y), np.asarray(prob), task)
    values = []
    for k in range(labels.shape[1]):
        seen = ~np.isnan(labels[:, k])
        if len(np.unique(labels[seen, k])) == 2:
            values.append(float(roc_auc_score(labels[seen, k], probs[seen, k])))
    return float(np.mean(values)) if values else float("nan")


def log_loss(y: np.ndarray, prob: np.ndarray, task: str) -> float:
    """Mean negative log-likelihood: cross-entropy (multiclass) or binary (others, missing
    labels left out)."""
    y = np.asarray(y)
    if is_per_step(y, task):
        y, prob = per_step(y, prob)
    if task == "binary":  # scikit-learn's, as federated runs have always reported
        from sklearn.metrics import log_loss as sk_log_loss

        return float(sk_log_loss(y, prob, labels=[0, 1]))
    p = np.clip(np.asarray(prob, dtype=np.float64), 1e-15, 1 - 1e-15)
    if task == "multiclass":
        rows = np.arange(len(y))
        picked = p[rows, y.astype(int)] / p.sum(axis=1)
        return float(-np.mean(np.log(picked)))
    seen = ~np.isnan(y)
    terms = y[seen] * np.log(p[seen]) + (1 - y[seen]) * np.log(1 - p[seen])
    return float(-np.mean(terms)) if terms.size else float("nan")


def predict(
    model: nn.Module, data: dict[str, np.ndarray], train: dict[str, Any], task: str = "binary"
) -> np.ndarray:
    """Probabilities of every sample in ``data``, batched as in ``[train]``."""
    return Trainer(local_train_config(train, epochs=1, seed=0, task=task)).predict(model, data)
