"""Train a seed ensemble of recurrent models on featurised splits and wrap it in a Bundle."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseq.bundle import Bundle
from medseq.experiment.config import ExperimentConfig
from medseq.experiment.data import Fold, LabelledSet
from medseq.features import ICUFeaturizer
from medseq.models import ModelConfig, build_model
from medseq.training import TrainConfig, Trainer, distributed

logger = logging.getLogger(__name__)


def featurise(featurizer: ICUFeaturizer, split: LabelledSet) -> dict[str, np.ndarray]:
    arrays = featurizer.transform(split.data.events, split.data.static, split.subject_ids)
    arrays["y"] = split.y.astype(np.float32)
    return arrays


def _model_config(config: ExperimentConfig, featurizer: ICUFeaturizer) -> ModelConfig:
    inferred = {
        "input_size": featurizer.n_features,
        "static_size": featurizer.n_static,
        "n_outputs": 1,
    }
    clash = sorted(set(inferred) & set(config.model or {}))
    if clash:
        raise ValueError(f"[model]: {clash} are inferred from the data; remove them")
    return ModelConfig.from_dict({**(config.model or {}), **inferred})


def _train_config(
    config: ExperimentConfig, seed: int, checkpoint_dir: Path, progress: bool
) -> TrainConfig:
    task = "binary" if config.task_type == "binary" else "regression"
    raw: dict[str, Any] = {"task": task, **config.train}
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

    Returns the bundle, the validation labels and (out-of-fold) predictions, and the test
    predictions of the whole ensemble (None without a test set). Under ``torchrun`` one
    process group serves every fit (:func:`medseq.training.distributed.session`).
    """
    with distributed.session(str(config.train.get("device", "auto"))):
        return _train_bundle(config, folds, test, out_dir, resume=resume, progress=progress)


def _train_bundle(config, folds, test, out_dir, *, resume, progress):
    everyone = LabelledSet(
        data=folds[0].train.data,
        subject_ids=np.concatenate([folds[0].train.subject_ids, folds[0].val.subject_ids]),
        y=np.concatenate([folds[0].train.y, folds[0].val.y]),
    )
    fit_ids = np.unique(np.concatenate([f.train.subject_ids for f in folds]))
    featurizer = ICUFeaturizer(**config.features)
    featurizer.fit(everyone.data.events, everyone.data.static, fit_ids)
    train_arrays = featurise(featurizer, everyone)
    row_of = {int(s): i for i, s in enumerate(everyone.subject_ids)}
    model_config = _model_config(config, featurizer)
    members, fits, val_y, val_pred = [], [], [], []
    for k, fold in enumerate(folds):
        rows = {
            part: np.array([row_of[int(s)] for s in getattr(fold, part).subject_ids])
            for part in ("train", "val")
        }
        fold_members = []
        for seed in config.seeds:
            tag = f"fold{k}-seed{seed}" if len(folds) > 1 else f"seed{seed}"
            model, fit = _fit_member(
                config,
                model_config,
                seed,
                out_dir / tag,
                _subset(train_arrays, rows["train"]),
                _subset(train_arrays, rows["val"]),
                resume=resume,
                progress=progress,
            )
            fold_members.append(model)
            fits.append({"member": tag, "best_epoch": fit.best_epoch, "best_score": fit.best_score})
        fold_bundle = _bundle(config, model_config, featurizer, fold_members)
        val_y.append(fold.val.y)
        val_pred.append(fold_bundle.predict_arrays(_subset(train_arrays, rows["val"])))
        members += fold_members
    bundle = _bundle(config, model_config, featurizer, members)
    bundle.train_config = {**config.train, "seeds": list(config.seeds), "fits": fits}
    test_pred = None if test is None else bundle.predict_arrays(featurise(featurizer, test))
    return bundle, np.concatenate(val_y), np.concatenate(val_pred), test_pred


def _fit_member(config, model_config, seed, checkpoint_dir, train, val, *, resume, progress):
    torch.manual_seed(seed)
    model = build_model(model_config)
    trainer = Trainer(_train_config(config, seed, checkpoint_dir, progress))
    fit = trainer.fit(model, train, val, resume=resume)
    logger.info("%s: best epoch %s, best %s", checkpoint_dir.name, fit.best_epoch, fit.best_score)
    return model, fit


def _bundle(config, model_config, featurizer, members) -> Bundle:
    return Bundle(
        model_config=model_config,
        featurizer=featurizer,
        members=members,
        task="binary" if config.task_type == "binary" else "regression",
    )
