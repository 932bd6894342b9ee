"""Train a seed ensemble of models on featurised splits and wrap it in a Bundle.

The dataset spec (:mod:`medseq.datasets.registry`) supplies the featurizer and the sizes
of the model config, so this loop serves every modality.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseq.bundle import Bundle
from medseq.datasets.registry import DatasetSpec, get_dataset
from medseq.experiment.config import ExperimentConfig
from medseq.experiment.data import Fold, LabelledSet
from medseq.models import build_model, model_config_from_dict
from medseq.training import TrainConfig, Trainer, distributed

logger = logging.getLogger(__name__)


def featurise(spec: DatasetSpec, featurizer: Any, split: LabelledSet) -> dict[str, np.ndarray]:
    """The model inputs of ``split`` plus its labels as ``y``."""
    arrays = dict(spec.transform(featurizer, split.data, split.subject_ids))
    arrays["y"] = split.y.astype(np.float32)
    return arrays


def n_outputs(task_type: str, y: np.ndarray, class_names: list[str] | None) -> int:
    """Logits the model needs: one, one per class, or one per label column."""
    if task_type == "multilabel":
        return int(y.shape[1])
    if task_type == "multiclass":
        if class_names:
            return len(class_names)
        return int(np.nanmax(y)) + 1
    return 1


def _model_config(config: ExperimentConfig, sizes: dict[str, Any]) -> Any:
    clash = sorted(set(sizes) & set(config.model or {}))
    if clash:
        raise ValueError(f"[model]: {clash} are inferred from the data; remove them")
    return model_config_from_dict({**(config.model or {}), **sizes})


def _train_config(
    config: ExperimentConfig, seed: int, checkpoint_dir: Path, progress: bool
) -> TrainConfig:
    raw: dict[str, Any] = {"task": config.task_type, **config.train}
    raw["seed"] = seed
    raw["checkpoint_dir"] = str(checkpoint_dir)
    raw.setdefault("progress", progress)
    return TrainConfig.from_dict(raw)


def _subset(arrays: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in arrays.items()}


def train_bundle(
    config: ExperimentConfig,
    folds: list[Fold],
    test: LabelledSet | None,
    out_dir: Path,
    *,
    resume: bool = False,
    progress: bool = True,
) -> tuple[Bundle, np.ndarray, np.ndarray, np.ndarray | None]:
    """Fit the featurizer on the training subjects, one model per fold and seed.

    Members early-stop on their fold's early-stopping part when it has one, else on its
    validation part. Returns the bundle, the validation labels and (out-of-fold)
    predictions, and the test predictions of the whole ensemble (None without a test
    set). Under ``torchrun`` one process group serves every fit
    (:func:`medseq.training.distributed.session`).
    """
    with distributed.session(str(config.train.get("device", "auto"))):
        return _train_bundle(config, folds, test, out_dir, resume=resume, progress=progress)


def _train_bundle(config, folds, test, out_dir, *, resume, progress):
    spec = get_dataset(config.data.dataset)
    first = folds[0].fitting()
    everyone = LabelledSet(
        data=first.data,
        subject_ids=np.concatenate([first.subject_ids, folds[0].val.subject_ids]),
        y=np.concatenate([first.y, folds[0].val.y]),
    )
    fit_ids = np.unique(np.concatenate([f.fitting().subject_ids for f in folds]))
    featurizer = spec.fit_featurizer(dict(config.features), everyone.data, fit_ids)
    train_arrays = featurise(spec, featurizer, everyone)
    class_names = (
        list(spec.class_names(config.data.task, everyone.data)) if spec.class_names else None
    )
    sizes = dict(spec.model_sizes(featurizer))
    sizes["n_outputs"] = n_outputs(config.task_type, everyone.y, class_names)
    model_config = _model_config(config, sizes)
    augment = spec.augment(dict(config.features), featurizer) if spec.augment is not None else None
    row_of = {int(s): i for i, s in enumerate(everyone.subject_ids)}
    members, fits, val_y, val_pred = [], [], [], []
    for k, fold in enumerate(folds):
        rows = {
            part: np.array([row_of[int(s)] for s in getattr(fold, part).subject_ids])
            for part in ("train", "val", "early_stop")
            if getattr(fold, part) is not None
        }
        stop_rows = rows.get("early_stop", rows["val"])
        fold_members = []
        for seed in config.seeds:
            tag = f"fold{k}-seed{seed}" if len(folds) > 1 else f"seed{seed}"
            model, fit = _fit_member(
                config,
                model_config,
                seed,
                out_dir / tag,
                _subset(train_arrays, rows["train"]),
                _subset(train_arrays, stop_rows),
                resume=resume,
                progress=progress,
                augment=augment,
            )
            fold_members.append(model)
            fits.append({"member": tag, "best_epoch": fit.best_epoch, "best_score": fit.best_score})
        fold_bundle = _bundle(config, model_config, featurizer, fold_members, class_names)
        val_y.append(fold.val.y)
        val_pred.append(fold_bundle.predict_arrays(_subset(train_arrays, rows["val"])))
        members += fold_members
    bundle = _bundle(config, model_config, featurizer, members, class_names)
    bundle.train_config = {**config.train, "seeds": list(config.seeds), "fits": fits}
    test_pred = None if test is None else bundle.predict_arrays(featurise(spec, featurizer, test))
    oof_pred = _stack(val_pred)
    bundle.drift_profile = _drift_profile(featurizer, train_arrays, oof_pred, bundle)
    return bundle, _stack(val_y), oof_pred, test_pred


def _drift_profile(featurizer, train_arrays, val_pred, bundle) -> dict[str, Any] | None:
    """The reference profile of the training inputs and the out-of-fold predictions (what
    the model gives on subjects it did not train on, as in service); None, logged, when the
    featurizer names no feature to profile."""
    from medseq.drift.profile import ProfileUnsupported, build_profile
    from medseq.features.base import describe

    try:
        return build_profile(
            describe(featurizer), train_arrays, val_pred,
            task=bundle.task, class_names=bundle.class_names,
        )  # fmt: skip
    except (ProfileUnsupported, TypeError) as err:  # TypeError: no describe() protocol
        logger.info("no drift profile: %s", err)
        return None


def _stack(parts: list[np.ndarray]) -> np.ndarray:
    """Concatenate per-fold arrays; per-step outputs of different lengths are NaN-padded."""
    if parts[0].ndim >= 2 and len({p.shape[1] for p in parts}) > 1:
        steps = max(p.shape[1] for p in parts)
        parts = [
            np.pad(
                p.astype(np.float32),
                [(0, 0), (0, steps - p.shape[1])] + [(0, 0)] * (p.ndim - 2),
                constant_values=np.nan,
            )
            for p in parts
        ]
    return np.concatenate(parts)


def _fit_member(
    config, model_config, seed, checkpoint_dir, train, val, *, resume, progress, augment=None
):
    torch.manual_seed(seed)
    model = build_model(model_config)
    trainer = Trainer(_train_config(config, seed, checkpoint_dir, progress))
    fit = trainer.fit(model, train, val, resume=resume, augment=augment)
    logger.info("%s: best epoch %s, best %s", checkpoint_dir.name, fit.best_epoch, fit.best_score)
    # a bundle is a CPU artefact (saved, served, explained, exported on CPU): a member
    # trained on a GPU comes back from it here
    return model.cpu(), fit


def _bundle(config, model_config, featurizer, members, class_names=None) -> Bundle:
    return Bundle(
        model_config=model_config,
        featurizer=featurizer,
        members=members,
        task=config.task_type,
        class_names=class_names,
    )
