"""A trained model as a directory anyone can inspect: safetensors weights plus JSON.

Layout::

    BUNDLE/
      weights.safetensors   one tensor set per ensemble member, keys "m{i}.{param}"
      medseq.json           model config, featurizer state, threshold, metrics, provenance

Nothing is pickled. ``medseq.json`` carries ``content_sha256``, a hash over the weight
bytes and the canonical JSON of everything else, so a bundle edited after saving (a
swapped weight file, a hand-changed threshold) is refused at load time instead of
silently giving different predictions.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from medseq import __version__
from medseq.features import ICUFeaturizer
from medseq.models import ModelConfig, build_model

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "medseq.json"
TASKS = ("binary", "regression")


class BundleError(ValueError):
    """The bundle is missing, incomplete, from an unknown format version, or tampered with."""


@dataclass
class Bundle:
    """A fitted feature pipeline and an ensemble of fitted models that share one config.

    Predictions average the members' probabilities (binary) or outputs (regression), so a
    seed ensemble and a single model are served by the same code.
    """

    model_config: ModelConfig
    featurizer: ICUFeaturizer
    members: list[torch.nn.Module]
    task: str = "binary"
    threshold: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    train_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if not self.members:
            raise ValueError("a bundle needs at least one model member")

    @torch.no_grad()
    def predict_arrays(self, features: dict[str, np.ndarray], batch_size: int = 512) -> np.ndarray:
        """Average member predictions on already-featurised arrays, shape (N,) or (N, K)."""
        n = len(features["lengths"])
        keys = [k for k in ("values", "mask", "delta", "lengths", "static") if k in features]
        outputs = []
        for member in self.members:
            member.eval()
            chunks = []
            for start in range(0, n, batch_size):
                batch = {k: torch.as_tensor(features[k][start : start + batch_size]) for k in keys}
                logits = member(**batch)
                chunks.append(torch.sigmoid(logits) if self.task == "binary" else logits)
            outputs.append(torch.cat(chunks).numpy())
        mean = np.mean(outputs, axis=0)
        return mean[:, 0] if mean.ndim == 2 and mean.shape[1] == 1 else mean

    def predict(self, events, static, subject_ids) -> np.ndarray:
        """Featurise raw event and static tables with the bundled pipeline, then predict."""
        features = self.featurizer.transform(events, static, subject_ids)
        return self.predict_arrays(features)


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


def _content_hash(weights: bytes, manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "content_sha256"}
    return hashlib.sha256(weights + _canonical(body)).hexdigest()


def save_bundle(bundle: Bundle, path: str | os.PathLike) -> Path:
    """Write ``bundle`` to directory ``path`` (created; existing bundle files are replaced)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {
        f"m{i}.{name}": tensor.detach().cpu().contiguous()
        for i, member in enumerate(bundle.members)
        for name, tensor in member.state_dict().items()
    }
    weights = save_safetensors_bytes(tensors)
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "medseq_version": __version__,
        "task": bundle.task,
        "n_members": len(bundle.members),
        "model_config": bundle.model_config.to_dict(),
        "featurizer": bundle.featurizer.state_dict(),
        "threshold": bundle.threshold,
        "metrics": bundle.metrics,
        "provenance": bundle.provenance,
        "train_config": bundle.train_config,
    }
    manifest["content_sha256"] = _content_hash(weights, manifest)
    _atomic_write(path / WEIGHTS_FILE, weights)
    _atomic_write(path / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True).encode())
    return path


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read a bundle, verifying its content hash before any weight is used.

    Raises
    ------
    BundleError
        If a file is missing, the format version is unknown, or the hash does not match.
    """
    path = Path(path)
    weights_path, manifest_path = path / WEIGHTS_FILE, path / MANIFEST_FILE
    for required in (weights_path, manifest_path):
        if not required.is_file():
            raise BundleError(f"{path}: not a medseq bundle, {required.name} is missing")
    weights = weights_path.read_bytes()
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as err:
        raise BundleError(f"{manifest_path}: invalid JSON ({err})") from None
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(f"{manifest_path}: format_version {version!r} unsupported, expected 1")
    if manifest.get("content_sha256") != _content_hash(weights, manifest):
        raise BundleError(
            f"{path}: content hash mismatch: the weights or medseq.json were modified after "
            "saving; refusing to load"
        )
    return _bundle_from(manifest, load_safetensors_bytes(weights))


def _bundle_from(manifest: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Bundle:
    config = ModelConfig.from_dict(manifest["model_config"])
    members = []
    for i in range(int(manifest["n_members"])):
        prefix = f"m{i}."
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        member = build_model(config)
        member.load_state_dict(state, strict=True)
        member.eval()
        members.append(member)
    return Bundle(
        model_config=config,
        featurizer=ICUFeaturizer.from_state_dict(manifest["featurizer"]),
        members=members,
        task=manifest["task"],
        threshold=manifest["threshold"],
        metrics=manifest["metrics"],
        provenance=manifest["provenance"],
        train_config=manifest.get("train_config", {}),
    )


def _atomic_write(target: Path, data: bytes) -> None:
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
