"""The Bonn EEG database (sets Z, O, N, F, S) as a :class:`~medseq.datasets.registry.DatasetSpec`.

Tasks, one label per 23.6 s segment:

- ``seizure`` (binary): set S (ictal) against Z, O, N and F;
- ``five_set`` (multiclass): Z (healthy, eyes open), O (healthy, eyes closed), N (interictal,
  opposite hippocampal formation), F (interictal, epileptogenic zone), S (ictal).

Sample ids: ``10 * number + position of the set in "ZONFS"`` (``Z001`` -> 10, ``S001`` ->
14, ``F100`` -> 1003), so ids sorted keep the five sets interleaved and ``[data]
max_subjects`` gives a small run with every set in it.

**The split is by segment, not by person.** The database does not say which of its five
volunteers or five patients a segment comes from, nor the time order of the segments, so
segments of one person (and perhaps adjacent stretches of one recording) fall on both sides
of every split; sets also differ by recording type (scalp for Z and O, intracranial for N, F
and S). Cross-validated figures on it are optimistic about new people.

Protocol ``by_set``: ``[data] cv_folds`` folds (10 in the configs) stratified on the *set*
for both tasks, so the seizure and five-set runs (and their baselines) share identical
folds. ``[data] inner_val_fraction`` then takes a stratified share of each fold's training
segments for early stopping.

``[features]`` keys: the :class:`~medseq.features.signals.signal_featurizer.SignalFeaturizer`
options (``target_fs_hz``, ``low_hz``, ``high_hz``, ``filter_order``, ``normalize``,
``max_seconds``); ``band_power_summaries`` (default false): also give the model each
segment's z-scored band powers as its ``static`` input
(:class:`~medseq.features.signals.band_power.BandPowerSignalFeaturizer`, for a ``ConvRNN``
with ``static_size`` set from it: summary fusion); and ``crop_seconds``, the length of the
random sub-windows that training batches are cut to
(:class:`~medseq.datasets.ecg_augment.RandomCropAugment`). A segment's
prediction reads the whole segment: the causal ConvRNN runs over all 23.6 s and attention
pools its steps (``mode = "recording"``), so training sees many shifted sub-windows of each
segment and prediction sees all of them at once.

The ``[baseline]`` estimators read band powers and simple statistics of the whole segment
(:mod:`medseq.features.signals.band_power`) through :attr:`DatasetSpec.summaries`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medseq.datasets.registry import DatasetSpec, SplitIds
from medseq.schema import DataError, ReadReport, Signal, check_known_keys
from medseq.serving.requests import LazyBody
from medseq.sources import bonn_eeg
from medseq.sources.bonn_eeg import SETS

TASKS = {"seizure": "binary", "five_set": "multiclass"}
OTHER_KEYS = ("crop_seconds", "band_power_summaries")
FEATURIZER_KEYS = ("target_fs_hz", "low_hz", "high_hz", "filter_order", "normalize", "max_seconds")
SET_NAMES = {
    "Z": "healthy, eyes open (scalp)",
    "O": "healthy, eyes closed (scalp)",
    "N": "interictal, opposite hippocampus (intracranial)",
    "F": "interictal, epileptogenic zone (intracranial)",
    "S": "seizure (intracranial)",
}


@dataclass(frozen=True)
class BonnData:
    """The segments by sample id, each one's set letter, and the read report."""

    signals: dict[int, Signal]
    sets: pd.Series  # sample id -> set letter
    report: ReadReport | None = None


def sample_id(record_id: str) -> int:
    """``"Z001"`` -> 10, ``"S100"`` -> 1004: ``10 * number + SETS.index(set)``."""
    if len(record_id) != 4 or record_id[0] not in SETS or not record_id[1:].isdigit():
        raise DataError(f"Bonn segment name {record_id!r} is not a set letter and 3 digits")
    return 10 * int(record_id[1:]) + SETS.index(record_id[0])


def read(path: Path) -> BonnData:
    """Read every segment under ``path`` (:func:`medseq.sources.bonn_eeg.read`'s layouts)."""
    found = bonn_eeg.read(path)
    ids = [sample_id(s.record_id) for s in found.signals]
    sets = pd.Series(found.sets.to_numpy(), index=pd.Index(ids, name="subject_id"), name="set")
    return BonnData(dict(zip(ids, found.signals, strict=True)), sets.sort_index(), found.report)


def _labels(task: str, data: BonnData) -> pd.Series:
    if task == "seizure":
        return (data.sets == "S").astype(np.int64).rename("seizure")
    if task == "five_set":
        return data.sets.map(SETS.index).astype(np.int64).rename("five_set")
    raise ValueError(f"unknown Bonn EEG task {task!r}; supported: {sorted(TASKS)}")


def _signals(data: BonnData, ids: np.ndarray) -> list[Signal]:
    missing = [int(i) for i in ids if int(i) not in data.signals]
    if missing:
        raise DataError(f"Bonn EEG: no segment for sample ids {missing[:5]}")
    return [data.signals[int(i)] for i in ids]


def fit_featurizer(features: dict[str, Any], data: BonnData, ids: np.ndarray) -> Any:
    """The raw-waveform :class:`SignalFeaturizer` of ``[features]``, fitted on ``ids``.

    Signal code (scipy) is imported here, not with the module, so the spec loads in the
    serve-only install."""
    from medseq.features.signals.band_power import BandPowerSignalFeaturizer
    from medseq.features.signals.signal_featurizer import SignalFeaturizer

    check_known_keys("[features] (bonn_eeg)", features, (*FEATURIZER_KEYS, *OTHER_KEYS))
    options = {k: v for k, v in features.items() if k in FEATURIZER_KEYS}
    fusion = features.get("band_power_summaries", False)
    if not isinstance(fusion, bool):
        raise ValueError(f"[features] band_power_summaries must be true or false, got {fusion!r}")
    cls = BandPowerSignalFeaturizer if fusion else SignalFeaturizer
    return cls(**options).fit(_signals(data, ids))


def transform(featurizer: Any, data: BonnData, ids: np.ndarray) -> dict[str, np.ndarray]:
    """``values`` ``(N, T, 1)`` and ``lengths`` of whole segments, for a ``ConvRNN`` (and
    ``static``, the z-scored band powers, with ``band_power_summaries``)."""
    return featurizer.transform(_signals(data, ids))


def summaries(data: BonnData, ids: np.ndarray) -> np.ndarray:
    """Band powers and statistics ``(N, F)`` of whole segments, for the ``[baseline]``."""
    from medseq.features.signals.band_power import band_power_features

    return band_power_features(_signals(data, ids))


def _sizes(featurizer: Any) -> dict[str, int]:
    sizes = {"in_channels": int(featurizer.n_channels)}
    if featurizer.kind == "signal_band_power":
        sizes["static_size"] = featurizer.n_summaries
    return sizes


def _augment(features: dict[str, Any], featurizer: Any) -> Any:
    from medseq.datasets.ecg_augment import RandomCropAugment

    seconds = features.get("crop_seconds")
    if seconds is None:
        return None
    return RandomCropAugment(round(float(seconds) * featurizer.target_fs_hz))


def by_set(config: Any, data: BonnData, labels: pd.Series) -> SplitIds:
    """``config.cv_folds`` (default 10) folds stratified on the set, for either task."""
    from medseq.tasks.splits import stratified_kfold

    ids = labels.index.to_numpy()
    n_splits = config.cv_folds or 10
    strata = data.sets.loc[ids].map(SETS.index).to_numpy()
    return SplitIds(
        list(stratified_kfold(ids, strata, n_splits=n_splits, random_state=config.split_seed))
    )


def _class_names(task: str, data: BonnData) -> list[str]:
    return list(SETS) if task == "five_set" else ["non-seizure", "seizure"]


def _subgroups(data: BonnData, ids: np.ndarray) -> dict[str, pd.Series]:
    sets = data.sets.loc[np.asarray(ids)]
    recording = sets.map(lambda s: "scalp" if s in "ZO" else "intracranial")
    return {"set": sets.rename("set"), "recording": recording.rename("recording")}


def _card_notes(task: str) -> dict[str, Any]:
    return {"data": [
        "Bonn EEG database (Andrzejak et al. 2001): 500 single-channel segments of 23.6 s at "
        "173.61 Hz, 100 per set: " + "; ".join(f"{k} {v}" for k, v in SET_NAMES.items()) + ".",
        "Segments carry no subject label, so cross-validation splits by segment: segments of "
        "one person fall on both sides and the figures are optimistic about new people.",
        "Sets differ by recording type (Z and O scalp, N, F and S intracranial): part of what "
        "separates healthy from epileptic segments is the electrode, not the brain state.",
    ]}


NO_SITES = (
    "the segments carry no hospital, subject or recording labels to split into sites "
    "(N and F are two electrode sites of the same five patients, not two hospitals)"
)
SEGMENT_EXAMPLE = {
    "records": [{"record_id": "S001", "fs_hz": 173.61, "samples": [-12.0, 4.0, 31.0, 58.0]}]
}
BONN_EEG = DatasetSpec(
    name="bonn_eeg",
    tasks=TASKS,
    read=read,
    labels=_labels,
    fit_featurizer=fit_featurizer,
    transform=transform,
    model_sizes=_sizes,
    class_names=_class_names,
    protocols={"by_set": by_set},
    augment=_augment,
    summaries=summaries,
    subgroups=_subgroups,
    card_notes=_card_notes,
    request=LazyBody("medseq.datasets.bonn_eeg_serving:parse", "signal", SEGMENT_EXAMPLE),
    unsupported={
        "partitions": NO_SITES,
        "federated": NO_SITES,
        "streaming": "each sample is a 23.6 s excerpt cut out of a longer recording, with no "
        "time order between excerpts: there is no patient stream to follow",
        "fhir": "the segments have no patient, time or electrode metadata to map a FHIR "
        "Bundle onto",
    },
)
