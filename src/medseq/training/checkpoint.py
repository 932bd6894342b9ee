"""Checkpoints that hold everything a resume needs, and nothing that needs pickle.

A checkpoint (``last.pt``) holds the unwrapped model's state, the optimizer and scheduler
states, the number of completed epochs, the best score and its weights, the history, the
RNG states of torch, numpy and python, and the :class:`TrainConfig` as JSON. It contains
only tensors, numbers, strings, lists, tuples and dicts, so it loads with
``torch.load(..., weights_only=True)``: opening a checkpoint cannot run code.

Files are written to a temporary name in the same folder, flushed to disk and moved into
place with :func:`os.replace`, so a crash (or SIGKILL) mid-write leaves the previous
checkpoint intact rather than a truncated one.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

FORMAT_VERSION = 1
LAST_FILE = "last.pt"
BEST_FILE = "best.safetensors"


@dataclass
class Checkpoint:
    """The state of a fit after ``epoch`` completed epochs.

    Attributes
    ----------
    model : dict of str to Tensor
        ``state_dict`` of the unwrapped model (no ``module.`` / ``_orig_mod.`` prefixes).
    optimizer, scheduler : dict
        Their ``state_dict()``; ``scheduler`` is None without a schedule.
    epoch : int
        Number of completed epochs; a resumed fit starts at epoch index ``epoch``.
    best_score, best_epoch : float or None, int or None
        Best monitored value so far and the (1-based) epoch that reached it.
    best_model : dict of str to Tensor or None
        Weights of ``best_epoch``, restored at the end of the fit.
    history : list of dict
        One record per completed epoch.
    config_json : str
        ``TrainConfig.to_json()`` of the run that wrote it.
    rng : dict
        From :func:`capture_rng_state`.
    stopped_early : bool
        True when early stopping ended the fit, so a resume has nothing left to do.
    """

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    epoch: int
    best_score: float | None
    best_epoch: int | None
    best_model: dict[str, torch.Tensor] | None
    history: list[dict[str, Any]]
    config_json: str
    rng: dict[str, Any] = field(default_factory=dict)
    stopped_early: bool = False
    format_version: int = FORMAT_VERSION


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module under ``DataParallel``/``DistributedDataParallel`` and ``torch.compile``.

    Saving the wrapper's state would prefix every key with ``module.`` or ``_orig_mod.``
    and break loading into a plain model (karpathy/nanoGPT#325).
    """
    while True:
        if isinstance(model, nn.DataParallel | nn.parallel.DistributedDataParallel):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = cast(nn.Module, model._orig_mod)  # checked just above
        else:
            return model


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of the unwrapped model's ``state_dict``."""
    state = unwrap_model(model).state_dict()
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def capture_rng_state() -> dict[str, Any]:
    """RNG states of torch (CPU and CUDA), numpy's global generator and python's ``random``.

    Numpy's and python's states are stored as tensors and ints so they pass
    ``weights_only`` loading.
    """
    legacy = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    name, keys, pos, has_gauss, cached = legacy
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {
            "version": int(version),
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["name"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["internal"]), py["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _replace_atomically(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_checkpoint(path: str | os.PathLike[str], checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` to ``path`` atomically; returns the path."""
    path = Path(path)
    payload = asdict(checkpoint)
    _replace_atomically(path, lambda tmp: torch.save(payload, tmp))
    return path


def load_checkpoint(path: str | os.PathLike[str], map_location: str = "cpu") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or unsafe files
        raise ValueError(f"{path}: not a readable medseq checkpoint ({err})") from err
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        version = payload.get("format_version") if isinstance(payload, dict) else None
        raise ValueError(
            f"{path}: checkpoint format_version {version!r} is not {FORMAT_VERSION}; "
            "it was written by another medseq version"
        )
    known = set(Checkpoint.__dataclass_fields__)
    unknown = sorted(set(payload) - known)
    if unknown:
        raise ValueError(f"{path}: unexpected checkpoint keys {unknown}")
    return Checkpoint(**payload)


def save_weights(path: str | os.PathLike[str], state: dict[str, torch.Tensor]) -> Path:
    """Write a ``state_dict`` as safetensors, atomically (used for ``best.safetensors``)."""
    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    _replace_atomically(path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    return path
