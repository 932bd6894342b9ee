"""MIT-BIH beat classification under the de Chazal protocol: select on DS1 validation, test DS2.

Reads the 44 non-paced records once, then trains one model per variant (``--variant``,
repeatable) through the same dataset spec, featurizer, ``ConvRNN`` and ``Trainer`` as
``medseq train configs/mitbih-beats.toml``, and prints per-class Se/+P on the validation
records (DS1: 116, 201, 220). DS2 is scored only with ``--test``, once the variant is fixed.

``--cv`` scores each variant by record-disjoint cross-validation within DS1 instead: the
22 DS1 records in the five folds of :data:`CV_FOLDS` (balanced by hand for S and V beats);
fold k is predicted by a model trained on three other folds, early-stopped on fold k + 1.
The five out-of-fold predictions are pooled and scored; the selection criterion is
:func:`criterion`, the mean of V Se, V +P and S Se (the target metrics). DS2 is not read
into any model. ``--cv --refit-epochs E`` instead trains fold k's model on the four other
folds for exactly E epochs (no early stopping, the last weights kept): how a model refitted
on all of DS1 for E epochs would do, against early stopping on held-out records.

    nice -n 19 .venv/bin/python benchmarks/ecg_mitbih.py --variant base --variant rhythm
    nice -n 19 .venv/bin/python benchmarks/ecg_mitbih.py --cv --variant scalars_mean
    nice -n 19 .venv/bin/python benchmarks/ecg_mitbih.py --variant rhythm --test
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from medseq.datasets import mitbih
from medseq.evaluation.multi import confusion
from medseq.features.signals.beat_featurizer import BeatFeaturizer
from medseq.models import build_model, model_config_from_dict
from medseq.paths import dataset_dir
from medseq.schema import check_known_keys
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
#: Record-disjoint DS1 folds for ``--cv`` (S / V beats per fold in the comments).
CV_FOLDS: tuple[tuple[str, ...], ...] = (
    ("209", "106", "101", "112", "230"),  # S 388, V 521
    ("201", "119", "115", "108"),  # S 134, V 659
    ("207", "203", "122", "109"),  # S 109, V 692
    ("118", "220", "208", "114"),  # S 204, V 1051 (and 375 of DS1's 415 F)
    ("223", "124", "215", "116", "205"),  # S 111, V 864
)
#: Model extras of the whole-record sequence-labelling variants, and their crop length.
SEQUENCE = {"mode": "sequence", "bidirectional": True}
CROP_BEATS = 64
SCALARS = {"lead": "MLII", "context_beats": 8, "morphology": "none", "local_ratios": False}
SMALL = {"hidden_size": 32, "dropout": 0.2}
SHAPE_LEAD2 = {**SCALARS, "qrs_shape": True, "second_lead": True}
FULL = {**SHAPE_LEAD2, "record_relative": True}
VARIANTS: dict[str, tuple[dict, dict, dict]] = {
    # --- second round: per-beat scalars with QRS shape and the second lead (DS1 CV) ---
    "shape": ({**SCALARS, "qrs_shape": True}, SMALL, {}),
    "lead2": ({**SCALARS, "second_lead": True}, SMALL, {}),
    "shape_lead2": (SHAPE_LEAD2, SMALL, {}),
    "shape_lead2_unweighted": (SHAPE_LEAD2, SMALL, {"class_weight": None}),
    "shape_lead2_h64": (SHAPE_LEAD2, {"hidden_size": 64, "dropout": 0.2}, {}),
    "shape_lead2_ctx2": ({**SHAPE_LEAD2, "context_beats": 2}, SMALL, {}),
    "shape_lead2_ctx0": ({**SHAPE_LEAD2, "context_beats": 0}, SMALL, {}),
    "shape_lead2_ctx1": ({**SHAPE_LEAD2, "context_beats": 1}, SMALL, {}),
    "shape_lead2_ctx2_bacc": (
        {**SHAPE_LEAD2, "context_beats": 2},
        SMALL,
        {"monitor": "balanced_accuracy"},
    ),
    "shape_lead2_ctx2_lr5e-4": ({**SHAPE_LEAD2, "context_beats": 2}, SMALL, {"lr": 5e-4}),
    "rel_ctx1": ({**FULL, "context_beats": 1}, SMALL, {}),
    "rel_ctx0": ({**FULL, "context_beats": 0}, SMALL, {}),
    "rel_ctx8": (FULL, SMALL, {}),
    "rel_ctx8_seed1": (FULL, SMALL, {"seed": 1}),
    "rel_ctx0_seed1": ({**FULL, "context_beats": 0}, SMALL, {"seed": 1}),
    "rel_ctx8_h16": (FULL, {"hidden_size": 16, "dropout": 0.2}, {}),
    "rel_ctx8_drop4": (FULL, {"hidden_size": 32, "dropout": 0.4}, {}),
    "local_ctx8": ({**FULL, "local_template": 10}, SMALL, {}),
    "local_ctx0": ({**FULL, "context_beats": 0, "local_template": 10}, SMALL, {}),
    "local_ctx1": ({**FULL, "context_beats": 1, "local_template": 10}, SMALL, {}),
    "local_ctx0_h16": (
        {**FULL, "context_beats": 0, "local_template": 10},
        {"hidden_size": 16, "dropout": 0.2},
        {},
    ),
    "rel_ctx0_h16": ({**FULL, "context_beats": 0}, {"hidden_size": 16, "dropout": 0.2}, {}),
    "shape_lead2_wd": (SHAPE_LEAD2, {"hidden_size": 32, "dropout": 0.4}, {"weight_decay": 1e-4}),
    # --- third round: softer class weights (square root of balanced) ---
    "rel_ctx8_sqrt": (FULL, SMALL, {"class_weight": "sqrt_balanced"}),
    "rel_ctx0_sqrt": ({**FULL, "context_beats": 0}, SMALL, {"class_weight": "sqrt_balanced"}),
    "scalars_mean_sqrt": (SCALARS, SMALL, {"class_weight": "sqrt_balanced"}),
    "rel_ctx8_sqrt_seed1": (FULL, SMALL, {"class_weight": "sqrt_balanced", "seed": 1}),
    # --- whole-record sequence labelling: a BiGRU over every beat of a record, trained on
    # crops of CROP_BEATS beats, one label per beat (both sides of each beat are seen) ---
    "seq_rel": ({**FULL, "context_beats": 0}, {**SMALL, **SEQUENCE}, {}),
    "seq_rel_seed1": ({**FULL, "context_beats": 0}, {**SMALL, **SEQUENCE}, {"seed": 1}),
    "seq_scalars": ({**SCALARS, "context_beats": 0}, {**SMALL, **SEQUENCE}, {}),
    "seq_rel_lr": ({**FULL, "context_beats": 0, "local_rhythm": 10}, {**SMALL, **SEQUENCE}, {}),
    # --- + local rhythm (prematurity against the neighbours' median RR, local irregularity) ---
    "rel_ctx8_lr10": ({**FULL, "local_rhythm": 10}, SMALL, {}),
    "rel_ctx8_lr10_seed1": ({**FULL, "local_rhythm": 10}, SMALL, {"seed": 1}),
    "rel_ctx8_lr5": ({**FULL, "local_rhythm": 5}, SMALL, {}),
    "rel_ctx0_lr10": ({**FULL, "context_beats": 0, "local_rhythm": 10}, SMALL, {}),
    # --- first round (validation records 116, 201, 220) ---
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


def criterion(scores: dict[str, float]) -> float:
    """Selection criterion, fixed before any result: mean of V Se, V +P and S Se."""
    return round(float(np.mean([scores["se_V"], scores["ppv_V"], scores["se_S"]])), 4)


def _fitted_featurizer(features: dict, data, train_ids, cache: dict) -> BeatFeaturizer:
    """The variant's featurizer, z-scored on the records of ``train_ids``; ``cache`` keeps
    the raw beat features across folds."""
    check_known_keys("[features] (mitbih)", features, mitbih.FEATURIZER_KEYS)
    featurizer = BeatFeaturizer(peaks="annotations", **features, _cache=cache)
    records = sorted({str(r) for r in data.beats.loc[train_ids, "record"]})
    return featurizer.fit([featurizer.raw_features(data.signals[r])[0] for r in records])


def _record_sequences(featurizer, data, labels, ids, crop: int | None):
    """Per-record beat matrices of the records of ``ids``, one label per beat (NaN where the
    beat is not in ``ids``, e.g. a Q beat); cut into crops of ``crop`` beats (half
    overlapping) for training, or whole records (``crop=None``, padded) for prediction.
    Returns the arrays and, per row and step, the beat id (-1 where none)."""
    table = data.beats.loc[ids]
    rows_v, rows_y, rows_id = [], [], []
    for record, where in table.groupby("record", sort=False).indices.items():
        matrix, _ = featurizer.features(data.signals[str(record)])
        y = np.full(len(matrix), np.nan, np.float32)
        beat_id = np.full(len(matrix), -1, np.int64)
        index = table["index"].to_numpy()[where]
        y[index] = labels.loc[table.index[where]].to_numpy(np.float32)
        beat_id[index] = table.index[where]
        starts = [0] if crop is None else range(0, max(1, len(matrix) - crop + 1), crop // 2)
        for start in starts:
            stop = len(matrix) if crop is None else start + crop
            rows_v.append(matrix[start:stop])
            rows_y.append(y[start:stop])
            rows_id.append(beat_id[start:stop])
    steps = max(len(v) for v in rows_v)
    n, width = len(rows_v), rows_v[0].shape[1]
    values = np.zeros((n, steps, width), np.float32)
    y = np.full((n, steps), np.nan, np.float32)
    beat_ids = np.full((n, steps), -1, np.int64)
    lengths = np.array([len(v) for v in rows_v], np.int64)
    for i, (v, t, b) in enumerate(zip(rows_v, rows_y, rows_id, strict=True)):
        values[i, : len(v)], y[i, : len(v)], beat_ids[i, : len(v)] = v, t, b
    return {"values": values, "lengths": lengths, "y": y}, beat_ids


def _fit_predict_sequence(name, data, labels, train_ids, val_ids, predict_ids, cache, refit=None):
    """:func:`_fit_predict` for the whole-record sequence-labelling variants."""
    features, model_extra, train_extra = VARIANTS[name]
    train_extra = {**train_extra, **(refit or {})}
    featurizer = _fitted_featurizer(features, data, train_ids, cache)
    train, _ = _record_sequences(featurizer, data, labels, train_ids, CROP_BEATS)
    val, _ = _record_sequences(featurizer, data, labels, val_ids, CROP_BEATS)
    config = model_config_from_dict(
        {**MODEL, **model_extra, "in_channels": featurizer.n_features, "n_outputs": 4}
    )
    torch.manual_seed(train_extra.get("seed", 0))
    model = build_model(config)
    trainer = Trainer(TrainConfig.from_dict({**TRAIN, "batch_size": 16, **train_extra}))
    fit = trainer.fit(model, train, val)
    whole, beat_ids = _record_sequences(featurizer, data, labels, predict_ids, None)
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(whole["values"]), torch.from_numpy(whole["lengths"]))
    prob = torch.softmax(logits, dim=-1).numpy()
    by_id = {int(b): prob[i, t] for (i, t), b in np.ndenumerate(beat_ids) if b >= 0}
    return np.stack([by_id[int(b)] for b in predict_ids]), fit.best_epoch


def _fit_predict(
    name: str, data, labels, train_ids, val_ids, predict_ids, cache: dict, refit: dict | None = None
):
    """Train variant ``name`` on ``train_ids`` (early stopping on ``val_ids``, or the
    ``refit`` schedule), predict ``predict_ids``."""
    features, model_extra, train_extra = VARIANTS[name]
    if model_extra.get("mode") == "sequence":
        return _fit_predict_sequence(
            name, data, labels, train_ids, val_ids, predict_ids, cache, refit
        )
    train_extra = {**train_extra, **(refit or {})}
    featurizer = _fitted_featurizer(features, data, train_ids, cache)
    model, trainer, fit, _ = _train_beats(
        featurizer, model_extra, train_extra, data, labels, train_ids, val_ids
    )
    prob = trainer.predict(model, mitbih.transform(featurizer, data, predict_ids))
    return prob, fit.best_epoch


def _train_beats(featurizer, model_extra, train_extra, data, labels, train_ids, val_ids):
    """One beat-context model fitted on ``train_ids``, early-stopping on ``val_ids``;
    returns the model, its trainer, the fit and the validation arrays."""
    arrays = {}
    for part, ids in (("train", train_ids), ("val", val_ids)):
        arrays[part] = mitbih.transform(featurizer, data, ids)
        arrays[part]["y"] = labels.loc[ids].to_numpy(np.float32)
    config = model_config_from_dict(
        {**MODEL, **model_extra, "in_channels": featurizer.n_features, "n_outputs": 4}
    )
    torch.manual_seed(train_extra.get("seed", 0))
    model = build_model(config)
    trainer = Trainer(TrainConfig.from_dict({**TRAIN, **train_extra}))
    fit = trainer.fit(model, arrays["train"], arrays["val"])
    return model, trainer, fit, arrays["val"]


def run_cv(
    name: str, data, labels, save: str | None = None, refit_epochs: int | None = None
) -> dict:
    """Pooled out-of-fold scores of variant ``name`` over :data:`CV_FOLDS` (DS1 only)."""
    start = time.perf_counter()
    if sorted(r for fold in CV_FOLDS for r in fold) != sorted(mitbih.MITBIH_DS1):
        raise RuntimeError("CV_FOLDS must partition the DS1 records")
    ids = [mitbih._ids_of(labels, fold) for fold in CV_FOLDS]
    cache: dict = {}
    probs, ys, epochs, per_fold = [], [], [], []
    for k in range(len(CV_FOLDS)):
        val_k = (k + 1) % len(CV_FOLDS)
        held_out = (k,) if refit_epochs else (k, val_k)  # refit: val_k only reports progress
        train_ids = np.concatenate([ids[j] for j in range(len(ids)) if j not in held_out])
        refit = (
            {"epochs": refit_epochs, "patience": None, "restore_best": False}
            if refit_epochs
            else None
        )
        prob, best = _fit_predict(
            name, data, labels, train_ids, ids[val_k], ids[k], cache, refit=refit
        )
        y = labels.loc[ids[k]].to_numpy(np.float32)
        probs.append(prob)
        ys.append(y)
        epochs.append(best)
        fold = _scores(y, prob)
        per_fold.append({m: fold[m] for m in ("se_S", "ppv_S", "se_V", "ppv_V")})
    y, prob = np.concatenate(ys), np.concatenate(probs)
    tag = f"{name}_refit{refit_epochs}" if refit_epochs else name
    if save:
        np.savez(f"{save}/{tag}.npz", ids=np.concatenate(ids), y=y, prob=prob)
    pooled = _scores(y, prob)
    return {
        "variant": tag,
        "cv_pooled": pooled,
        "criterion": criterion(pooled),
        "best_epochs": epochs,
        "per_fold": per_fold,
        "confusion": confusion(y, prob, 4).tolist(),
        "seconds": round(time.perf_counter() - start, 1),
    }


def run_variant(name: str, data, labels, split, test: bool) -> dict:
    features, model_extra, train_extra = VARIANTS[name]
    start = time.perf_counter()
    (train_ids, val_ids), test_ids = split.folds[0], split.test
    featurizer = mitbih.fit_featurizer(dict(features), data, train_ids)
    model, trainer, fit, val = _train_beats(
        featurizer, model_extra, train_extra, data, labels, train_ids, val_ids
    )
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
        out["test_confusion"] = confusion(y, prob, 4).tolist()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS))
    parser.add_argument("--test", action="store_true", help="also score DS2 (final variant)")
    parser.add_argument(
        "--cv", action="store_true", help="record-disjoint 5-fold CV within DS1 (no DS2)"
    )
    parser.add_argument("--save", help="folder for the pooled out-of-fold predictions (.npz)")
    parser.add_argument(
        "--refit-epochs",
        type=int,
        default=None,
        help="with --cv: train on the four other folds for exactly this many epochs",
    )
    args = parser.parse_args()
    if args.save and not args.cv:
        parser.error("--save keeps the out-of-fold predictions of --cv")
    if args.refit_epochs is not None and (not args.cv or args.refit_epochs < 1):
        parser.error("--refit-epochs needs --cv and a number >= 1")
    if args.cv and args.test:
        parser.error("--cv scores DS1 folds only; --test belongs to the final variant")
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
        if args.cv:
            result = run_cv(name, data, labels, args.save, args.refit_epochs)
            print(json.dumps(result), flush=True)
        else:
            print(json.dumps(run_variant(name, data, labels, split, args.test)), flush=True)


if __name__ == "__main__":
    main()
