"""CinC 2017 rhythm classification: 5-fold stratified CV with per-fold wall time.

Same dataset spec, featurizers, ``ConvRNN`` and ``Trainer`` as ``medseq train
configs/cinc2017-*.toml``, driven fold by fold so that each fold is timed and scored on its
own. Inside each fold, 10 % of the training recordings (stratified) are held out for early
stopping; the fold's test part is predicted once. Hyperparameters are chosen beforehand
with ``--select`` (fold 0, or the folds of ``--select-folds``, scored on their inner
early-stopping parts, never on a test part). R peaks (XQRS) of every recording are detected
once per machine (:mod:`medseq.features.signals.peak_cache`); a run that detects them reports the
time separately and per fold pro rata.

    nice -n 10 .venv/bin/python benchmarks/ecg_cinc2017.py --variant beats --select
    nice -n 10 .venv/bin/python benchmarks/ecg_cinc2017.py --variant beats --folds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from medseq.datasets import cinc2017
from medseq.evaluation.multi import confusion, multiclass_metrics
from medseq.features.signals import peak_cache
from medseq.features.signals.beat_featurizer import BeatFeaturizer
from medseq.models import build_model, model_config_from_dict
from medseq.paths import dataset_dir
from medseq.tasks.ecg import CINC2017_CLASSES
from medseq.tasks.splits import stratified_kfold, stratified_split
from medseq.training import TrainConfig, Trainer

TRAIN = {
    "task": "multiclass",
    "epochs": 20,
    "batch_size": 64,
    "lr": 2e-3,
    "clip_grad_norm": 1.0,
    "patience": 5,
    "scheduler": "plateau",
    "lr_plateau_patience": 2,
    "lr_gamma": 0.3,
    "num_threads": 1,
    "progress": False,
}
BEAT_MODEL = {
    "kind": "conv_rnn",
    "conv_channels": [],
    "conv_strides": [],
    "hidden_size": 64,
    "bidirectional": True,
    "attention_size": 32,
    "dropout": 0.2,
}
RHYTHM_FEATURES = {"kind": "beats", "crop_beats": 40, "rhythm_summary": True}
VARIANTS: dict[str, dict] = {
    # name: features (incl. crop), model, train extras
    "beats": {"features": {"kind": "beats", "crop_beats": 40}, "model": BEAT_MODEL, "train": {}},
    "beats_nocrop": {"features": {"kind": "beats"}, "model": BEAT_MODEL, "train": {}},
    "beats_big": {
        "features": {"kind": "beats", "crop_beats": 40},
        "model": {**BEAT_MODEL, "hidden_size": 96, "num_layers": 2},
        "train": {},
    },
    "beats_wide": {
        "features": {"kind": "beats", "crop_beats": 40},
        "model": {**BEAT_MODEL, "hidden_size": 128, "dropout": 0.4},
        "train": {},
    },
    "beats_long": {
        "features": {"kind": "beats", "crop_beats": 60},
        "model": BEAT_MODEL,
        "train": {"epochs": 30, "patience": 8},
    },
    # + record-level rhythm summaries (medseq.features.signals.rhythm_summary) fused into the head
    "beats_rhythm": {
        "features": {"kind": "beats", "crop_beats": 40, "rhythm_summary": True},
        "model": {**BEAT_MODEL, "static_hidden_size": 32},
        "train": {},
    },
    "beats_rhythm_s64": {
        "features": {"kind": "beats", "crop_beats": 40, "rhythm_summary": True},
        "model": {**BEAT_MODEL, "static_hidden_size": 64},
        "train": {},
    },
    "beats_rhythm_d4": {
        "features": {"kind": "beats", "crop_beats": 40, "rhythm_summary": True},
        "model": {**BEAT_MODEL, "static_hidden_size": 32, "dropout": 0.4},
        "train": {},
    },
    # + the median beat's intervals and amplitudes in the summaries / per-beat QRS shape
    "beats_rhythm_morph": {
        "features": {**RHYTHM_FEATURES, "beat_morphology": True},
        "model": {**BEAT_MODEL, "static_hidden_size": 32},
        "train": {},
    },
    "beats_rhythm_qrs": {
        "features": {**RHYTHM_FEATURES, "qrs_shape": True},
        "model": {**BEAT_MODEL, "static_hidden_size": 32},
        "train": {},
    },
    "beats_rhythm_morph_qrs": {
        "features": {**RHYTHM_FEATURES, "beat_morphology": True, "qrs_shape": True},
        "model": {**BEAT_MODEL, "static_hidden_size": 32},
        "train": {},
    },
    "signal": {
        "features": {
            "kind": "signal",
            "target_fs_hz": 150.0,
            "max_seconds": 61.0,
            "crop_seconds": 15.0,
        },
        "model": {
            "kind": "conv_rnn",
            "conv_channels": [16, 32, 64, 64],
            "conv_strides": [3, 3, 2, 2],
            "kernel_size": 9,
            "hidden_size": 64,
            "bidirectional": False,
            "dropout": 0.2,
        },
        "train": {"epochs": 25, "patience": 6},
    },
}


def _detect_peaks(data: cinc2017.CincData, featurizer: BeatFeaturizer) -> dict:
    """XQRS R peaks of every recording, through the on-disk peak cache; how long it took.

    Only a pass that detected every recording times the detection itself; a cached pass
    takes under a second, and ``benchmarks/ecg_peak_cache.py`` has the uncached figure.
    """
    folder = peak_cache.cache_dir()

    def cached() -> set[Path]:
        return set(folder.glob("*.npy")) if folder is not None and folder.is_dir() else set()

    stored = cached()
    start = time.perf_counter()
    for signal in data.signals.values():
        featurizer.peak_positions(signal)
    seconds = time.perf_counter() - start
    detected = len(data.signals) if folder is None else len(cached() - stored)
    return {"seconds": seconds, "detected": detected, "of": len(data.signals)}


def _arrays(featurizer, data, ids, labels) -> dict[str, np.ndarray]:
    arrays = cinc2017.transform(featurizer, data, ids)
    arrays["y"] = labels.loc[ids].to_numpy(np.float32)
    return arrays


def _report(y: np.ndarray, prob: np.ndarray) -> dict:
    out = multiclass_metrics(y, prob, list(CINC2017_CLASSES))
    out.update(cinc2017.metrics("rhythm", y, prob))
    keep = ("challenge_f1", "accuracy", "f1_N", "f1_A", "f1_O", "f1_~")
    return {k: round(float(out[k]), 4) for k in keep}


def run_fold(k, fold, variant, data, labels, template, select: bool, seeds) -> dict:
    train_ids, test_ids = fold
    start, cpu_start = time.perf_counter(), time.process_time()
    fit_ids, stop_ids = stratified_split(
        train_ids, labels.loc[train_ids].to_numpy(), val_fraction=0.1, random_state=0
    )
    features = dict(variant["features"])
    if isinstance(template, BeatFeaturizer):
        featurizer = cinc2017.beat_featurizer(features)
        featurizer.detected_peaks = template.detected_peaks
        featurizer._cache = template._cache  # raw beat features, keyed by record and options
        cinc2017.fit_beats(featurizer, [data.signals[int(i)] for i in fit_ids])
    else:
        featurizer = cinc2017.fit_featurizer(features, data, fit_ids)
    train = _arrays(featurizer, data, fit_ids, labels)
    stop = _arrays(featurizer, data, stop_ids, labels)
    sizes = cinc2017._sizes(featurizer)
    config = model_config_from_dict({**variant["model"], **sizes, "n_outputs": 4})
    augment = cinc2017._augment(features, featurizer)
    fits, stop_probs, models = [], [], []
    for member in seeds:
        torch.manual_seed(member)
        model = build_model(config)
        trainer = Trainer(TrainConfig.from_dict({**TRAIN, **variant["train"], "seed": member}))
        fits.append(trainer.fit(model, train, stop, augment=augment))
        stop_probs.append(trainer.predict(model, stop))
        models.append(model)
    out = {
        "fold": k,
        "seeds": list(seeds),
        "best_epoch": [f.best_epoch for f in fits],
        "epochs_run": [len(f.history) for f in fits],
        "epoch_seconds": round(float(np.mean([r["seconds"] for f in fits for r in f.history])), 1),
        "inner_val": _report(stop["y"], np.mean(stop_probs, axis=0)),
    }
    if not select:
        test = _arrays(featurizer, data, test_ids, labels)
        prob = np.mean([trainer.predict(m, test) for m in models], axis=0)
        out["test"] = _report(test["y"], prob)
        out["confusion"] = confusion(test["y"], prob, 4).tolist()
    out["fold_seconds"] = round(time.perf_counter() - start, 1)
    out["fold_cpu_seconds"] = round(time.process_time() - cpu_start, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variant",
        nargs="+",
        default=["beats"],
        choices=sorted(VARIANTS),
        help="several only with --select (they must share the featurizer kind)",
    )
    parser.add_argument("--folds", type=int, nargs="*", default=[0])
    parser.add_argument(
        "--select", action="store_true", help="inner validation only (of --select-folds)"
    )
    parser.add_argument(
        "--select-folds", type=int, nargs="+", default=[0], help="folds scored by --select"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="averaged per fold")
    parser.add_argument("--out", type=Path, default=None, help="write the folds as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if len(args.variant) > 1 and not args.select:
        parser.error("several variants only with --select")
    start = time.perf_counter()
    data = cinc2017.read(dataset_dir("physionet2017"))
    labels = data.labels
    print(f"read {len(labels)} recordings in {time.perf_counter() - start:.0f} s", flush=True)
    template, peaks = None, None
    if VARIANTS[args.variant[0]]["features"]["kind"] == "beats":
        template = BeatFeaturizer(peaks="xqrs")
        peaks = _detect_peaks(data, template)
        print(
            f"XQRS R peaks of all recordings: {peaks['seconds']:.0f} s "
            f"({peaks['detected']} of {peaks['of']} detected, the rest from the cache)",
            flush=True,
        )
    ids = labels.index.to_numpy()
    folds = stratified_kfold(ids, labels.to_numpy(), n_splits=5, random_state=0)
    results = []
    for name in args.variant:
        for k in args.select_folds if args.select else args.folds:
            out = run_fold(
                k, folds[k], VARIANTS[name], data, labels, template, args.select, args.seeds
            )
            out["variant"] = name
            if peaks is not None and peaks["detected"] == peaks["of"]:  # a full detection
                out["peak_detection_seconds_pro_rata"] = round(peaks["seconds"] * 0.8, 1)
            results.append(out)
            print(json.dumps(out), flush=True)
    if args.select and args.out is not None:
        args.out.write_text(json.dumps({"select": results}, indent=2))
    if not args.select and results:
        f1 = [r["test"]["challenge_f1"] for r in results]
        summary = {
            "variant": args.variant[0],
            "folds": args.folds,
            "mean_challenge_f1": round(float(np.mean(f1)), 4),
            "std": round(float(np.std(f1)), 4),
        }
        print(json.dumps(summary), flush=True)
        if args.out is not None:
            args.out.write_text(json.dumps({"summary": summary, "folds": results}, indent=2))


if __name__ == "__main__":
    main()
