"""Sleep-EDF sleep staging as a :class:`~medseq.datasets.registry.DatasetSpec`.

Task ``sleep_stage``: the stage (W, N1, N2, N3, REM) of every 30-s epoch of a night, as
**sequence labelling**: a sample is one whole night, its inputs the per-epoch EEG features
``(T, F)`` (:class:`~medseq.features.signals.sleep_epochs.SleepEpochFeaturizer`) and its
label one stage per epoch ``(T,)``. A bidirectional recurrence over the epochs
(``ConvRNN(mode="sequence", conv_channels=[])``) labels each epoch from the whole night
around it: the structure of DeepSleepNet's sequence part (Supratak et al. 2017), here on
stored features instead of a learned CNN front end.

The night is trimmed to the conventional window around sleep, as DeepSleepNet's
``prepare_physionet.py`` does: from :data:`EDGE_MIN` minutes of wake before the first
sleep epoch to :data:`EDGE_MIN` minutes after the last one, here in clock time from the
hypnogram (60 epochs of 30 s), so the wake-dominated afternoon and morning of these
22-hour recordings are left out. Movement and unscored epochs inside the window were
dropped from the feature files upstream; ``gaps="join"`` (DeepSleepNet's choice) runs the
recurrence across them, ``gaps="mask"`` inserts an unlabelled step with mean (zero) inputs
in their place. Both are counted in the read report.

Sample ids: the night ``4000 + 10 * subject + night`` (``SC4012`` -> 4012); ``groups``
gives the subject, so both nights of a subject stay on one side of every split.

Protocol ``loso``: leave one subject out, ten folds, no test part: the result is the
pooled out-of-fold prediction of every night (``[data] inner_val_fraction`` takes
early-stopping nights from each fold's training subjects).

``[features]`` keys: ``recover_power``, ``context_columns``, ``per_night`` (the featurizer's) and
``crop_epochs`` (train on random windows of that many epochs of each night; 0 = whole
nights; prediction always reads whole nights).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medseq.datasets.registry import DatasetSpec, SplitIds
from medseq.datasets.sequence_crop import SequenceCropAugment
from medseq.features.signals.sleep_epochs import SleepEpochFeaturizer
from medseq.schema import DataError, ReadReport, check_known_keys
from medseq.serving.requests import LazyBody
from medseq.sources.sleepedf_features import MOVEMENT, STAGES, UNSCORED, Night, read_folder

EDGE_MIN = 30
EPOCHS_PER_MIN = 2
GAPS = ("join", "mask")
FEATURIZER_KEYS = ("recover_power", "context_columns", "per_night")
FEATURE_KEYS = (*FEATURIZER_KEYS, "crop_epochs")


@dataclass(frozen=True)
class SleepEdfData:
    """Nights by id, each night's window (rows and their steps), and the read report.

    ``rows[i]`` are the feature rows of night ``i`` inside its window and ``steps[i]`` the
    sequence position of each (``0..n_steps - 1``; with ``gaps="mask"`` positions of gap
    epochs are skipped). ``n_steps`` is the longest window, the padded length of every
    array this dataset returns.
    """

    nights: dict[int, Night]
    rows: dict[int, np.ndarray]
    steps: dict[int, np.ndarray]
    n_steps: int
    report: ReadReport


def sleep_window(night: Night, edge_min: int = EDGE_MIN) -> np.ndarray:
    """Rows from ``edge_min`` minutes before the first sleep epoch to as long after the last."""
    asleep = np.flatnonzero(night.stages != 0)
    if not asleep.size:
        raise DataError(f"night SC{night.night_id}: no sleep epoch; no window around sleep")
    edge = edge_min * EPOCHS_PER_MIN
    first, last = night.epoch[asleep[0]] - edge, night.epoch[asleep[-1]] + edge
    return np.flatnonzero((night.epoch >= first) & (night.epoch <= last))


def _window(night: Night, edge_min: int, gaps: str, report: ReadReport):
    rows = sleep_window(night, edge_min)
    epochs = night.epoch[rows]
    inside = night.hypnogram[epochs[0] : epochs[-1] + 1]
    report.add("epochs outside the window around sleep (trimmed)", len(night.stages) - len(rows))
    report.add(f"movement epochs inside the window ({gaps})", int((inside == MOVEMENT).sum()))
    report.add(f"unscored epochs inside the window ({gaps})", int((inside == UNSCORED).sum()))
    steps = np.arange(len(rows)) if gaps == "join" else epochs - epochs[0]
    return rows, steps


def read(path: Path, *, edge_min: int = EDGE_MIN, gaps: str = "join") -> SleepEdfData:
    """Every night of the folder ``path``, trimmed to its window around sleep."""
    if gaps not in GAPS:
        raise ValueError(f"gaps must be one of {GAPS}, got {gaps!r}")
    nights, report = read_folder(Path(path))
    rows, steps = {}, {}
    for night in nights:
        rows[night.night_id], steps[night.night_id] = _window(night, edge_min, gaps, report)
    n_steps = max(int(s[-1]) + 1 for s in steps.values())
    return SleepEdfData({n.night_id: n for n in nights}, rows, steps, n_steps, report)


def unlabelled_nights(matrices: list[np.ndarray]) -> SleepEdfData:
    """Nights known only by their stored feature rows ``(n, 72)`` (a REST body): no
    hypnogram, so every row is inside the window and consecutive (``gaps="join"``); the
    stages are :data:`UNSCORED`. Ids are the positions ``0..N-1``."""
    nights, rows = {}, {}
    for k, matrix in enumerate(matrices):
        n = len(matrix)
        unscored = np.full(n, UNSCORED, dtype=np.int64)
        nights[k] = Night(k, -1, matrix, unscored, np.arange(n), unscored)
        rows[k] = np.arange(n)
    n_steps = max(len(m) for m in matrices)
    return SleepEdfData(nights, rows, dict(rows), n_steps, ReadReport(source="request"))


def _labels(task: str, data: SleepEdfData) -> pd.DataFrame:
    """One row per night, one column per step: the stage index, NaN at gaps and padding."""
    if task != "sleep_stage":
        raise ValueError(f"unknown Sleep-EDF task {task!r}; supported: ['sleep_stage']")
    table = np.full((len(data.nights), data.n_steps), np.nan)
    ids = sorted(data.nights)
    for i, night_id in enumerate(ids):
        table[i, data.steps[night_id]] = data.nights[night_id].stages[data.rows[night_id]]
    return pd.DataFrame(table, index=pd.Index(ids, name="subject_id", dtype=np.int64))


def _night(data: SleepEdfData, night_id: int) -> Night:
    if night_id not in data.nights:
        raise DataError(f"Sleep-EDF: unknown night id {night_id}; read: {sorted(data.nights)}")
    return data.nights[night_id]


def fit_featurizer(
    features: dict[str, Any], data: SleepEdfData, ids: np.ndarray
) -> SleepEpochFeaturizer:
    """A :class:`SleepEpochFeaturizer` z-scored on the windowed epochs of the nights ``ids``."""
    check_known_keys("[features] (sleepedf)", features, list(FEATURE_KEYS))
    options = {k: v for k, v in features.items() if k in FEATURIZER_KEYS}
    matrices = [_night(data, int(i)).features[data.rows[int(i)]] for i in ids]
    return SleepEpochFeaturizer(**options).fit(matrices)


def transform(featurizer: SleepEpochFeaturizer, data: SleepEdfData, ids: np.ndarray) -> dict:
    """``values`` (N, n_steps, F) float32, zero at gaps and padding, and ``lengths`` (N,)."""
    ids = np.asarray(ids, dtype=np.int64)
    values = np.zeros((len(ids), data.n_steps, featurizer.n_features), np.float32)
    lengths = np.zeros(len(ids), np.int64)
    for i, night_id in enumerate(ids):
        night = _night(data, int(night_id))
        steps = data.steps[int(night_id)]
        values[i, steps] = featurizer.transform(night.features[data.rows[int(night_id)]])
        lengths[i] = steps[-1] + 1
    return {"values": values, "lengths": lengths}


def _sizes(featurizer: SleepEpochFeaturizer) -> dict[str, int]:
    return {"in_channels": featurizer.n_features}


def _class_names(task: str, data: SleepEdfData) -> list[str]:
    return list(STAGES)


def _subjects(task: str, data: SleepEdfData, ids: np.ndarray) -> np.ndarray:
    """The subject of each night id: both nights of a subject move together."""
    return (np.asarray(ids, dtype=np.int64) - 4000) // 10


def loso(spec: Any, data: SleepEdfData, labels: pd.DataFrame) -> SplitIds:
    """Leave one subject out: one fold per subject, its nights as the validation part."""
    ids = labels.index.to_numpy()
    subjects = _subjects("sleep_stage", data, ids)
    if len(np.unique(subjects)) < 2:
        raise DataError(f"loso needs nights of >= 2 subjects, got subjects {np.unique(subjects)}")
    folds = [(ids[subjects != s], ids[subjects == s]) for s in np.unique(subjects)]
    return SplitIds(folds=folds)


def metrics(task: str, y_true: np.ndarray, y_prob: np.ndarray) -> dict[str, float]:
    """Cohen's kappa over all labelled epochs (scikit-learn), beside the runner's table."""
    from sklearn.metrics import cohen_kappa_score

    from medseq.evaluation.multi import flatten_steps

    y, p = flatten_steps(y_true, y_prob)
    return {"kappa": float(cohen_kappa_score(y, p.argmax(axis=1), labels=np.arange(len(STAGES))))}


def _augment(features: dict[str, Any], featurizer: SleepEpochFeaturizer):
    crop = int(features.get("crop_epochs", 0))
    return SequenceCropAugment(crop) if crop > 0 else None


def _subgroups(data: SleepEdfData, ids: np.ndarray) -> dict[str, pd.Series]:
    ids = np.asarray(ids, dtype=np.int64)
    night = np.where(ids % 10 == 1, "first night", "second night")
    return {"night": pd.Series(night, index=ids)}


def _card_notes(task: str) -> dict[str, Any]:
    return {"data": [
        "Sleep-EDF Expanded, sleep-cassette nights SC4001-SC4092: 20 nights of 10 healthy "
        "subjects aged 25-34 (all recorded as female), scored by Rechtschaffen & Kales rules; "
        "stages 3 and 4 merged into N3.",
        "Inputs are third-party per-epoch features of the Fpz-Cz and Pz-Oz EEG channels "
        "(Welch band powers, Hjorth parameters), not the raw signals; the 1e-10 floor of "
        "their stored log powers is undone before scaling.",
        f"Each night is trimmed to {EDGE_MIN} min before the first and after the last sleep "
        "epoch. SC4011E0's feature file stops after 951 epochs (no REM).",
        "The model labels an epoch from the whole night, after it as well as before it: it "
        "scores finished recordings, not a night as it happens.",
    ]}


UNSUPPORTED = {
    "streaming": "the bidirectional recurrence labels each epoch from the epochs after it "
    "too, so a night cannot be staged one epoch at a time as it is recorded",
    "fhir": "no FHIR resource carries per-epoch EEG band powers",
    "partitions": "ten subjects recorded by one lab: there is no site to split by",
}


#: One epoch of SC4001E0 (N2) at full precision; a real body sends every epoch of the night's
#: window, in time order, each with the 18 base features (and the 54 context features when
#: the bundle reads them). Rounding hides band powers below the stored 1e-10 floor.
NIGHT_EXAMPLE = {"nights": [{"night_id": "night-1", "epochs": [{
    "Fpz-Cz_delta": -22.398509570814557, "Fpz-Cz_theta": -22.939577888338768,
    "Fpz-Cz_alpha": -23.003223058667512, "Fpz-Cz_beta": -23.022686144744416,
    "Fpz-Cz_gamma": -23.025499554128928, "Fpz-Cz_theta_alpha": 0.9972332064047416,
    "Fpz-Cz_alpha_delta": 1.0269979342171767, "Fpz-Cz_log_var": -21.423726375706355,
    "Fpz-Cz_mobility": 0.2143705238540741, "Pz-Oz_delta": -22.8213135188062,
    "Pz-Oz_theta": -22.96793789539639, "Pz-Oz_alpha": -23.01449625281954,
    "Pz-Oz_beta": -23.024693462676787, "Pz-Oz_gamma": -23.025652490380132,
    "Pz-Oz_theta_alpha": 0.997976998635473, "Pz-Oz_alpha_delta": 1.008465013810664,
    "Pz-Oz_log_var": -22.191369364977426, "Pz-Oz_mobility": 0.21023063526337607,
}]}]}  # fmt: skip

SLEEPEDF = DatasetSpec(
    name="sleepedf",
    tasks={"sleep_stage": "multiclass"},
    read=read,
    labels=_labels,
    fit_featurizer=fit_featurizer,
    transform=transform,
    model_sizes=_sizes,
    class_names=_class_names,
    protocols={"loso": loso},
    metrics=metrics,
    augment=_augment,
    groups=_subjects,
    subgroups=_subgroups,
    card_notes=_card_notes,
    request=LazyBody("medseq.datasets.sleepedf_serving:parse", "eeg_epochs", NIGHT_EXAMPLE),
    unsupported=UNSUPPORTED,
)
