"""Feature dicts in, checked tensors and batches out.

The trainer receives the plain dict made by a featurizer (``values``, ``mask``, ``delta``,
``lengths``, ``static`` for ICU grids; ``tokens``, ``visits`` or whatever other arrays a
modality's model names) and, for fitting, ``y``. This module checks it once at the
boundary, converts it to tensors, and hands the model only the inputs its ``forward``
names, by keyword. Integer arrays (token ids, lengths) become int64, everything else
float32.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator, Mapping

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

INPUT_KEYS = ("values", "mask", "delta", "lengths", "static")
_SEQUENCE_KEYS = ("values", "mask", "delta")


def model_input_names(model: nn.Module, available: Mapping[str, object]) -> tuple[str, ...]:
    """Inputs to pass to ``model.forward``: the arrays present that its signature names.

    A forward with ``**kwargs`` receives every one of the :data:`INPUT_KEYS` present. A
    required parameter with no array in ``available`` is an error naming it.
    """
    params = inspect.signature(model.forward).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    present = {k for k, v in available.items() if v is not None and k != "y"}
    wanted = [k for k in INPUT_KEYS if takes_any or k in params]
    wanted += [k for k in params if k not in INPUT_KEYS]
    names = tuple(k for k in wanted if k in present)
    for name, param in params.items():
        required = param.default is inspect.Parameter.empty and param.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        )
        if required and name not in names:
            raise ValueError(
                f"{type(model).__name__}.forward requires {name!r}, which the data does "
                f"not provide (it has {sorted(present)}; the trainer passes {INPUT_KEYS})"
            )
    ignored = sorted((present & set(INPUT_KEYS)) - set(names))
    if ignored:
        logger.info("%s.forward does not take %s; not passed", type(model).__name__, ignored)
    return names


def _as_array(data: Mapping[str, object], key: str, where: str) -> np.ndarray:
    value = data[key]
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{where}[{key!r}] must be a numpy array, got {type(value).__name__}")
    return value


def _check_inputs(arrays: dict[str, np.ndarray], where: str) -> None:
    for key in _SEQUENCE_KEYS:
        if key in arrays and arrays[key].ndim != 3:
            raise ValueError(f"{where}[{key!r}] must be (N, T, F), got {arrays[key].shape}")
    shapes = {k: arrays[k].shape for k in _SEQUENCE_KEYS if k in arrays}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"{where}: values, mask and delta must have one shape, got {shapes}")
    if "static" in arrays and arrays["static"].ndim != 2:
        raise ValueError(f"{where}['static'] must be (N, S), got {arrays['static'].shape}")
    n = {k: a.shape[0] if a.ndim else None for k, a in arrays.items()}
    if len(set(n.values())) != 1:
        raise ValueError(f"{where}: arrays disagree on the number of samples: {n}")
    if "lengths" in arrays:
        lengths = arrays["lengths"]
        if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(
                f"{where}['lengths'] must be integer (N,), got {lengths.dtype} {lengths.shape}"
            )
        steps = arrays["values"].shape[1] if "values" in arrays else None
        if lengths.size and (lengths.min() < 1 or (steps is not None and lengths.max() > steps)):
            raise ValueError(
                f"{where}['lengths'] must be in [1, {steps}], "
                f"got min {lengths.min()} max {lengths.max()}"
            )
    if "values" in arrays and not np.isfinite(arrays["values"]).all():
        raise ValueError(f"{where}['values'] has NaN or inf; impute before training")


def _check_labels(y: np.ndarray, task: str, where: str) -> None:
    if task in ("binary", "regression", "multiclass") and y.ndim == 2 and y.shape[1] == 1:
        return _check_labels(y[:, 0], task, where)
    # multiclass (N, T): one class per step of a sequence-labelling model, NaN where none.
    expected_ndim = {"binary": (1,), "multiclass": (1, 2), "multilabel": (2,), "regression": (1, 2)}
    if y.ndim not in expected_ndim[task]:
        raise ValueError(
            f"{where}['y'] for task={task!r} must have ndim in {expected_ndim[task]}, "
            f"got shape {y.shape}"
        )
    observed = y[~np.isnan(y)]
    if observed.size == 0:
        raise ValueError(f"{where}['y'] has no labels (all NaN)")
    if np.isinf(observed).any():
        raise ValueError(f"{where}['y'] has inf values")
    if task in ("binary", "multilabel") and not np.isin(observed, (0.0, 1.0)).all():
        bad = float(observed[~np.isin(observed, (0.0, 1.0))][0])
        raise ValueError(f"{where}['y'] for task={task!r} must be 0, 1 or NaN, got {bad!r}")
    if task == "multiclass" and ((observed < 0).any() or (observed != np.round(observed)).any()):
        raise ValueError(f"{where}['y'] for multiclass must hold class indices 0..K-1")
    return None


def to_tensors(
    data: Mapping[str, object],
    names: tuple[str, ...],
    *,
    task: str | None = None,
    where: str = "data",
) -> dict[str, torch.Tensor]:
    """Check and convert the arrays in ``names`` (plus ``y`` when ``task`` is given).

    Floats become float32 and ``lengths`` int64. ``y`` of shape (N, 1) for single-label
    tasks is flattened to (N,).
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"{where} must be a dict of arrays, got {type(data).__name__}")
    wanted = list(names) + (["y"] if task is not None else [])
    missing = [k for k in wanted if data.get(k) is None]
    if missing:
        raise ValueError(f"{where} is missing {missing}; it has {sorted(data)}")
    arrays = {k: _as_array(data, k, where) for k in wanted}
    if any(a.ndim == 0 or a.shape[0] == 0 for a in arrays.values()):
        raise ValueError(f"{where} has no samples")
    _check_inputs(arrays, where)
    if task is not None:
        y = arrays["y"].astype(np.float32)
        _check_labels(y, task, where)
        if task != "multilabel" and y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        arrays["y"] = y
    out = {}
    for key, array in arrays.items():
        integer = key != "y" and np.issubdtype(array.dtype, np.integer)
        dtype = torch.int64 if integer or key == "lengths" else torch.float32
        out[key] = torch.as_tensor(np.ascontiguousarray(array)).to(dtype)
    return out


def n_samples(tensors: Mapping[str, torch.Tensor]) -> int:
    """Number of samples (first dimension) of a dict built by :func:`to_tensors`."""
    return int(next(iter(tensors.values())).shape[0])


def iter_batches(
    tensors: Mapping[str, torch.Tensor],
    batch_size: int,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Yield batches on ``device``; shuffled with ``generator`` when one is given.

    Shuffling uses an explicit generator, never the global RNG, so the order depends only
    on the generator's seed (the trainer seeds it ``seed + epoch``).
    """
    n = n_samples(tensors)
    order = torch.arange(n) if generator is None else torch.randperm(n, generator=generator)
    for idx in order.split(batch_size):
        yield {k: v[idx].to(device, non_blocking=True) for k, v in tensors.items()}


def resolve_device(name: str) -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("TrainConfig.device is 'cuda' but torch.cuda.is_available() is False")
    return torch.device(name)


def forward_batches(
    model: nn.Module, tensors: Mapping[str, torch.Tensor], names: tuple[str, ...], batch_size: int
) -> torch.Tensor:
    """Model outputs for every sample, in order, in eval mode and without gradients.

    Runs on the device of the model's parameters and restores the model's train/eval mode
    afterwards, so calling it mid-training has no side effect.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    outputs = []
    try:
        with torch.no_grad():
            inputs = {k: tensors[k] for k in names}
            for batch in iter_batches(inputs, batch_size, device):
                outputs.append(model(**batch).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(outputs)
