"""A trained model as a directory anyone can inspect: safetensors weights plus JSON.

Layout::

    BUNDLE/
      weights.safetensors   one tensor set per ensemble member, keys "m{i}.{param}"
      medseq.json           model config, featurizer state, threshold, metrics, provenance,
                            calibration parameters, model card (JSON)
      MODEL_CARD.md         the model card as markdown (only when the bundle has one)

Nothing is pickled. ``medseq.json`` carries ``content_sha256``, a hash over the weight
bytes and the canonical JSON of everything else, so a bundle edited after saving (a
swapped weight file, a hand-changed threshold) is refused at load time instead of
silently giving different predictions. ``MODEL_CARD.md`` is covered through its sha256,
stored in ``medseq.json`` (``model_card_sha256``) and checked at load.
"""

from __future__ import annotations

import hashlib
import inspect
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
from medseq.features.registry import featurizer_from_state_dict
from medseq.models import build_model, model_config_from_dict

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "medseq.json"
MODEL_CARD_FILE = "MODEL_CARD.md"
TASKS = ("binary", "multiclass", "multilabel", "regression")


class BundleError(ValueError):
    """The bundle is missing, incomplete, from an unknown format version, or tampered with."""


@dataclass
class Bundle:
    """A fitted feature pipeline and an ensemble of fitted models that share one config.

    Predictions average the members' probabilities (sigmoid for binary and multilabel,
    softmax for multiclass) or outputs (regression), so a seed ensemble and a single model
    are served by the same code. ``featurizer`` is any registered featurizer
    (:mod:`medseq.features.registry`) and ``model_config`` any registered model config
    (:mod:`medseq.models.registry`); ``class_names`` names the classes or label columns of
    a multiclass or multilabel bundle.

    ``calibration`` holds the JSON parameters of
    :func:`medseq.evaluation.calibration.fit_calibration`, fitted on validation
    predictions; they are applied only when asked (``calibrated=True``), so raw risks and
    the metrics computed from them never change silently. ``model_card`` is the JSON model
    card and ``model_card_markdown`` its rendering (see :mod:`medseq.report.model_card`).
    ``drift_profile`` summarises the training inputs and out-of-fold predictions (bins and
    counts, no rows; :mod:`medseq.drift.profile`) for the service's drift monitor;
    None in bundles saved before it existed or whose featurizer names no feature.
    """

    model_config: Any
    featurizer: Any
    members: list[torch.nn.Module]
    task: str = "binary"
    threshold: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    train_config: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None
    model_card: dict[str, Any] | None = None
    model_card_markdown: str | None = None
    class_names: list[str] | None = None
    conformal: dict[str, Any] | None = None
    drift_profile: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if not self.members:
            raise ValueError("a bundle needs at least one model member")

    @torch.no_grad()
    def predict_arrays(
        self, features: dict[str, np.ndarray], batch_size: int = 512, *, calibrated: bool = False
    ) -> np.ndarray:
        """Average member predictions on already-featurised arrays: (N,), (N, K) or (N, T', K).

        ``calibrated=True`` maps binary risks through the stored calibration; it raises
        when the bundle has none (fit one with ``fit_calibration`` on validation data).
        """
        if calibrated:
            return self.calibrate(self.predict_arrays(features, batch_size))
        names = _input_names(self.members[0], features)
        n = len(features[names[0]])
        outputs = []
        for member in self.members:
            member.eval()
            device = next(member.parameters(), torch.empty(0)).device
            chunks = []
            for start in range(0, n, batch_size):
                batch = {
                    k: _as_tensor(features[k][start : start + batch_size]).to(device) for k in names
                }
                chunks.append(_probabilities(member(**batch), self.task).cpu())
            outputs.append(torch.cat(chunks).numpy())
        mean = np.mean(outputs, axis=0)
        return mean[:, 0] if mean.ndim == 2 and mean.shape[1] == 1 else mean

    def predict(self, data: Any, ids: Any, *, calibrated: bool = False) -> np.ndarray:
        """Featurise ``ids`` of ``data`` with the bundled pipeline, then predict.

        ``data`` is what the bundle's dataset reads (``spec.read``; for PhysioNet 2012 the
        set with its event and static tables), ``ids`` the subject or sample ids, in the
        order of the rows returned; the dataset spec's ``transform`` makes the arrays, so
        this is the same call for every modality.
        """
        features = self.spec().transform(self.featurizer, data, np.asarray(ids))
        return self.predict_arrays(features, calibrated=calibrated)

    @property
    def dataset(self) -> str:
        """The registered dataset this bundle was trained on (``provenance["dataset"]``)."""
        return _origin(self.provenance, "bundle")[0]

    @property
    def dataset_task(self) -> str:
        """The dataset's task the bundle predicts (``provenance["task"]``, e.g.
        ``"mortality"``); :attr:`task` is its type (``"binary"``...)."""
        return _origin(self.provenance, "bundle")[1]

    def spec(self) -> Any:
        """The bundle's :class:`~medseq.datasets.registry.DatasetSpec`, which every later
        stage asks for what it needs (transform, subgroups, request body, ...)."""
        from medseq.datasets.registry import get_dataset

        spec = get_dataset(self.dataset)
        definition = self.provenance.get("task_definition")
        if definition:  # a task written in the training config travels with the bundle
            from medseq.tasks.spec import define_task

            define_task(self.dataset, self.dataset_task, definition)
        state = self.provenance.get("request_state")
        reader = spec.read_as_trained
        if reader is not None and state:  # new files read as the training file was
            from dataclasses import replace

            spec = replace(spec, read=lambda path: reader(path, state))
        return spec

    def calibrate(self, y_prob: np.ndarray | float) -> np.ndarray:
        """Raw risks (or a raw threshold) mapped through the stored calibration."""
        if self.task != "binary":
            raise ValueError(f"calibration applies to binary bundles, this one is {self.task!r}")
        if self.calibration is None:
            raise ValueError(
                "this bundle stores no calibration: fit one on validation predictions with "
                "medseq.evaluation.fit_calibration and set bundle.calibration, or run "
                "`medseq report --validation PATH`"
            )
        from medseq.evaluation.calibration import apply_calibration

        return apply_calibration(y_prob, self.calibration)


ORIGIN_KEYS = ("dataset", "task")


def _origin(provenance: dict[str, Any], where: str) -> tuple[str, str]:
    """``(dataset, task)`` of a bundle's provenance; a BundleError naming what is missing."""
    missing = [
        k for k in ORIGIN_KEYS if not isinstance(provenance.get(k), str) or not provenance[k]
    ]
    if missing:
        raise BundleError(
            f"{where}: provenance lacks {missing}; a bundle must record the registered dataset "
            "and the task it was trained for (medseq train writes both). Fix: set "
            "bundle.provenance['dataset'] (one of medseq.datasets.DATASETS) and "
            "bundle.provenance['task'] before save_bundle, or load an older bundle with "
            "load_bundle(path, origin=(dataset, task)) and save it again"
        )
    return provenance["dataset"], provenance["task"]


def _input_names(member: torch.nn.Module, features: dict[str, Any]) -> list[str]:
    """The arrays present in ``features`` that the member's ``forward`` names."""
    params = inspect.signature(member.forward).parameters
    names = [k for k in params if features.get(k) is not None]
    if not names:
        raise ValueError(
            f"{type(member).__name__}.forward takes {list(params)}; the features hold "
            f"{sorted(features)}"
        )
    return names


def _as_tensor(array: Any) -> torch.Tensor:
    tensor = torch.as_tensor(np.ascontiguousarray(array))
    return tensor.long() if not tensor.is_floating_point() else tensor.float()


def _probabilities(logits: torch.Tensor, task: str) -> torch.Tensor:
    if task in ("binary", "multilabel"):
        return torch.sigmoid(logits)
    if task == "multiclass":
        return torch.softmax(logits, dim=-1)
    return logits


def bundle_model_kind(path: str | os.PathLike) -> str | None:
    """The model kind a bundle directory holds, read from its JSON without loading weights.

    None when ``path`` holds no ``medseq.json``; lets the CLI pick the explanation that fits
    the model (RETAIN contributions, slice attention, integrated gradients) cheaply.
    """
    manifest = Path(path) / MANIFEST_FILE
    if not manifest.is_file():
        return None
    config = json.loads(manifest.read_text()).get("model_config", {})
    return config.get("kind", "rnn_classifier")


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


def _content_hash(weights: bytes, manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "content_sha256"}
    return hashlib.sha256(weights + _canonical(body)).hexdigest()


def save_bundle(bundle: Bundle, path: str | os.PathLike) -> Path:
    """Write ``bundle`` to directory ``path`` (created; existing bundle files are replaced).

    Raises
    ------
    BundleError
        If ``bundle.provenance`` does not name its ``dataset`` and ``task``.
    """
    path = Path(path)
    _origin(bundle.provenance, f"save_bundle({str(path)!r})")
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
        "calibration": bundle.calibration,
        "model_card": bundle.model_card,
    }
    if bundle.class_names is not None:
        manifest["class_names"] = list(bundle.class_names)
    if bundle.conformal is not None:  # absent rather than null: older bundles hash the same
        manifest["conformal"] = bundle.conformal
    if bundle.drift_profile is not None:  # likewise (medseq.drift.profile)
        manifest["drift_profile"] = bundle.drift_profile
    card = bundle.model_card_markdown
    if card is not None:
        manifest["model_card_sha256"] = hashlib.sha256(card.encode()).hexdigest()
    manifest["content_sha256"] = _content_hash(weights, manifest)
    _atomic_write(path / WEIGHTS_FILE, weights)
    if card is not None:
        _atomic_write(path / MODEL_CARD_FILE, card.encode())
    elif (path / MODEL_CARD_FILE).exists():
        (path / MODEL_CARD_FILE).unlink()  # a stale card would describe another model
    _atomic_write(path / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True).encode())
    return path


def load_bundle(path: str | os.PathLike, *, origin: tuple[str, str] | None = None) -> Bundle:
    """Read a bundle, verifying its content hash before any weight is used.

    ``origin``: ``(dataset, task)`` for a bundle saved before they were required; only
    filled in where the provenance lacks them (a different recorded value is an error).

    Raises
    ------
    BundleError
        If a file is missing, the format version is unknown, the hash does not match, or
        the provenance lacks the dataset or the task (and ``origin`` does not give them).
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
    card = _read_model_card(path, manifest)
    _fill_origin(manifest.setdefault("provenance", {}), origin, path)
    bundle = _bundle_from(manifest, load_safetensors_bytes(weights))
    bundle.model_card_markdown = card
    return bundle


def _fill_origin(provenance: dict[str, Any], origin: tuple[str, str] | None, path: Path) -> None:
    """Add ``origin`` where the provenance lacks it, then require both keys."""
    if origin is not None:
        for key, value in zip(ORIGIN_KEYS, origin, strict=True):
            recorded = provenance.setdefault(key, value)
            if recorded != value:
                raise BundleError(
                    f"{path}: origin gives {key}={value!r}, the bundle records {recorded!r}"
                )
    _origin(provenance, str(path))


def _read_model_card(path: Path, manifest: dict[str, Any]) -> str | None:
    """The markdown model card, checked against the sha256 the hashed manifest holds."""
    expected = manifest.get("model_card_sha256")
    if expected is None:
        return None
    card_path = path / MODEL_CARD_FILE
    if not card_path.is_file():
        raise BundleError(f"{path}: {MODEL_CARD_FILE} is listed in medseq.json but missing")
    data = card_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != expected:
        raise BundleError(f"{card_path}: modified after saving (sha256 mismatch); refusing")
    return data.decode()


def _bundle_from(manifest: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Bundle:
    config = model_config_from_dict(manifest["model_config"])
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
        featurizer=featurizer_from_state_dict(manifest["featurizer"]),
        members=members,
        task=manifest["task"],
        threshold=manifest["threshold"],
        metrics=manifest["metrics"],
        provenance=manifest["provenance"],
        train_config=manifest.get("train_config", {}),
        calibration=manifest.get("calibration"),
        model_card=manifest.get("model_card"),
        class_names=manifest.get("class_names"),
        conformal=manifest.get("conformal"),
        drift_profile=manifest.get("drift_profile"),
    )


def _atomic_write(target: Path, data: bytes) -> None:
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
