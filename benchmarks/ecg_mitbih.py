"""MIT-BIH beat classification under the de Chazal protocol: select on DS1 validation, test DS2.

Reads the 44 non-paced records once, then trains one model per variant (``--variant``,
repeatable) through the same dataset spec, featurizer, ``ConvRNN`` and ``Trainer`` as
``medseq train configs/mitbih-beats.toml``, and prints per-class Se/+P on the validation
records (DS1: 116, 201, 220). DS2 is scored only with ``--test``, once the variant is fixed.

    nice -n 10 .venv/bin/python benchmarks/ecg_mitbih.py --variant base --variant rhythm
    nice -n 10 .venv/bin/python benchmarks/ecg_mitbih.py --variant rhythm --test
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from medseq.experiment.ecg_datasets import mitbih
from medseq.models import build_model, model_config_from_dict
from medseq.paths import dataset_dir
from medseq.training import TrainConfig, Trainer

MODEL = {"kind": "conv_rnn", "conv_channels": [], "conv_strides": [], "pooling": "last"}
TRAIN = {
    "task": "multiclass",
    "epochs": 15,
    "batch_size": 256,
    "lr": 2e-3,
    "class_weight": "balanced",
    "clip_grad_norm": 1.0,
    "patience": 4,
    "num_threads": 1,
    "progress": False,
}
VARIANTS: dict[str, tuple[dict, dict, dict]] = {
    "scalars_mean_ctx16": (
        {"lead": "MLII", "context_beats": 16, "morphology": "none", "local_ratios": False},
        {"hidden_size": 32, "dropout": 0.2},
        {},
    ),
    "scalars_mean_h64": (
        {"lead": "MLII", "context_beats": 8, "morphology": "none", "local_ratios": False},
        {"hidden_size": 64, "dropout": 0.2},
        {},
    ),
    "scalars_mean": (
        {"lead": "MLII", "context_beats": 8, "morphology": "none", "local_ratios": False},
        {"hidden_size": 32, "dropout": 0.2},
        {},
    ),
    "dev25_scalars_mean": (
        {
            "lead": "MLII",
            "context_beats": 8,
            "morphology": "deviation",
            "segment_fs_hz": 25.0,
            "local_ratios": False,
        },
        {"hidden_size": 32, "dropout": 0.2},
        {},
    ),
    "scalars": (
        {"lead": "MLII", "context_beats": 8, "morphology": "none"},
        {"hidden_size": 32, "dropout": 0.2},
        {},
    ),
    "dev25_scalars": (
        {"lead": "MLII", "context_beats": 8, "morphology": "deviation", "segment_fs_hz": 25.0},
        {"hidden_size": 32, "dropout": 0.2},
        {},
    ),
    "base_reg": (
        {"lead": "MLII", "context_beats": 8},
        {"hidden_size": 32, "dropout": 0.4},
        {"lr": 1e-3, "weight_decay": 1e-4},
    ),
    "base_ctx1": ({"lead": "MLII", "context_beats": 1}, {"hidden_size": 32, "dropout": 0.2}, {}),
    "short_window": (
        {"lead": "MLII", "context_beats": 8, "before_s": 0.2, "after_s": 0.25},
        {"hidden_size": 32, "dropout": 0.2},
        {},
    ),
    "dev25_small_e3": (
        {"lead": "MLII", "context_beats": 4, "morphology": "deviation", "segment_fs_hz": 25.0},
        {"hidden_size": 16, "dropout": 0.3},
        {"lr": 1e-3, "epochs": 3, "patience": None},
    ),
    "dev25_small_e10": (
        {"lead": "MLII", "context_beats": 4, "morphology": "deviation", "segment_fs_hz": 25.0},
        {"hidden_size": 16, "dropout": 0.3},
        {"lr": 1e-3, "epochs": 10, "patience": None},
    ),
    "both25_small_e3": (
        {"lead": "MLII", "context_beats": 4, "morphology": "both", "segment_fs_hz": 25.0},
        {"hidden_size": 16, "dropout": 0.3},
        {"lr": 1e-3, "epochs": 3, "patience": None},
    ),
    "dev": (
        {"lead": "MLII", "context_beats": 8, "morphology": "deviation"},
        {"hidden_size": 32, "dropout": 0.2},
        {},
    ),
    "dev_lr": (
        {"lead": "MLII", "context_beats": 8, "morphology": "deviation"},
        {"hidden_size": 32, "dropout": 0.2},
        {"lr": 5e-4},
    ),
    "dev25_lr": (
        {"lead": "MLII", "context_beats": 8, "morphology": "deviation", "segment_fs_hz": 25.0},
        {"hidden_size": 32, "dropout": 0.2},
        {"lr": 5e-4},
    ),
    # name: ([features], [model] extras, [train] extras)
    "base": ({"lead": "MLII", "context_beats": 8}, {"hidden_size": 32, "dropout": 0.2}, {}),
    "seg20": (
        {"lead": "MLII", "context_beats": 8, "segment_fs_hz": 20.0},
        {"hidden_size": 32, "dropout": 0.2},
        {},
    ),
    "rhythm": (
        {"lead": "MLII", "context_beats": 8, "morphology": "none"},
        {"hidden_size": 32, "dropout": 0.2},
        {},
    ),
    "seg20_wd": (
        {"lead": "MLII", "context_beats": 8, "segment_fs_hz": 20.0},
        {"hidden_size": 32, "dropout": 0.3},
        {"weight_decay": 1e-3},
    ),
}


def _scores(y: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    return {k: round(v, 4) for k, v in mitbih.metrics("beat", y, prob).items()}


def run_variant(name: str, data, labels, split, test: bool) -> dict:
    features, model_extra, train_extra = VARIANTS[name]
    start = time.perf_counter()
    (train_ids, val_ids), test_ids = split.folds[0], split.test
    featurizer = mitbih.fit_featurizer(dict(features), data, train_ids)
    train = mitbih.transform(featurizer, data, train_ids)
    val = mitbih.transform(featurizer, data, val_ids)
    train["y"] = labels.loc[train_ids].to_numpy(np.float32)
    val["y"] = labels.loc[val_ids].to_numpy(np.float32)
    config = model_config_from_dict(
        {**MODEL, **model_extra, "in_channels": featurizer.n_features, "n_outputs": 4}
    )
    torch.manual_seed(0)
    model = build_model(config)
    trainer = Trainer(TrainConfig.from_dict({**TRAIN, **train_extra}))
    fit = trainer.fit(model, train, val)
    out = {
        "variant": name,
        "best_epoch": fit.best_epoch,
        "train_seconds": round(time.perf_counter() - start, 1),
        "val": _scores(val["y"], trainer.predict(model, val)),
    }
    if test:
        arrays = mitbih.transform(featurizer, data, test_ids)
        prob = trainer.predict(model, arrays)
        y = labels.loc[test_ids].to_numpy(np.float32)
        out["test"] = _scores(y, prob)
        from medseq.evaluation.multi import confusion

        out["test_confusion"] = confusion(y, prob, 4).tolist()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS))
    parser.add_argument("--test", action="store_true", help="also score DS2 (final variant)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    data = mitbih.read(dataset_dir("mitdb_full"))
    labels = mitbih._labels("beat", data)
    split = mitbih.de_chazal(None, data, labels)
    print(
        f"read {len(data.signals)} records in {time.perf_counter() - start:.0f} s;",
        data.report.summary(),
    )
    for name in args.variant or ["base"]:
        print(json.dumps(run_variant(name, data, labels, split, args.test)), flush=True)


if __name__ == "__main__":
    main()
