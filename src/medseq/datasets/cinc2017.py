"""CinC 2017 AF challenge recordings as a :class:`~medseq.datasets.registry.DatasetSpec`.

Task ``rhythm``: multiclass N / A / O / ~ per recording (:mod:`medseq.tasks.ecg`); the
challenge F1 (mean F1 of N, A and O) is added to the metric table. The protocol is the
runner's stratified cross-validation over the recordings present (``[data] cv_folds = 5``);
there is no public test set here. Subject ids are the record numbers (``A00042`` -> 42).

``[features]`` keys:

- ``kind``: ``"signal"`` (raw waveform, :class:`~medseq.features.signals.signal_featurizer.
  SignalFeaturizer`, for a ``ConvRNN`` with a convolutional front end) or ``"beats"``
  (one step per detected beat, :class:`~medseq.features.signals.beat_featurizer.BeatFeaturizer`
  with XQRS peaks, for a ``ConvRNN`` with ``conv_channels = []``); default ``"signal"``;
- the chosen featurizer's options;
- ``crop_seconds`` (signal) or ``crop_beats`` (beats): random-crop length of training
  batches (:class:`~medseq.datasets.ecg_augment.RandomCropAugment`); no crop
  when absent;
- ``rhythm_summary`` (beats only, default false): also compute the record-level rhythm
  summaries of :mod:`medseq.features.signals.rhythm_summary` (z-scored on the training
  recordings) as the ``static`` input, for a ``ConvRNN`` with ``static_size`` > 0 (set
  from the featurizer); the featurizer is then a
  :class:`~medseq.features.signals.rhythm_summary.RhythmBeatFeaturizer`;
- ``beat_morphology`` (with ``rhythm_summary``, default false): append the median beat's
  intervals and amplitudes to the summaries.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from medseq.datasets import partitions
from medseq.datasets.registry import DatasetSpec
from medseq.schema import DataError, Signal, check_known_keys
from medseq.serving.requests import LazyBody

if TYPE_CHECKING:
    from medseq.features.signals.beat_featurizer import BeatFeaturizer
    from medseq.sources import physionet2017

logger = logging.getLogger(__name__)


KINDS = ("signal", "beats")
#: The featurizer kinds (``featurizer.kind``) of the two beat featurizers.
BEAT_KINDS = ("beats", "beats_rhythm")
AUGMENT_KEYS = {"signal": ("crop_seconds",), "beats": ("crop_beats",)}
OTHER_KEYS = {"signal": (), "beats": ("rhythm_summary", "beat_morphology")}
FEATURIZER_KEYS = {
    "signal": ("target_fs_hz", "low_hz", "high_hz", "filter_order", "normalize", "max_seconds"),
    "beats": (
        "low_hz",
        "high_hz",
        "before_s",
        "after_s",
        "segment_fs_hz",
        "local_beats",
        "morphology",
        "qrs_shape",
    ),
}


@dataclass(frozen=True)
class CincData:
    """The recordings read, by subject id, and their labels."""

    signals: dict[int, Signal]
    labels: pd.Series
    report: Any = None


def record_number(record_id: str) -> int:
    """Subject id of a CinC record name: ``"A00042"`` -> 42."""
    if len(record_id) < 2 or not record_id[1:].isdigit():
        raise DataError(f"CinC 2017 record name {record_id!r} is not 'A' followed by digits")
    return int(record_id[1:])


def from_set(data: physionet2017.PhysioNet2017Set) -> CincData:
    """Index a read :class:`~medseq.sources.physionet2017.PhysioNet2017Set` by record number."""
    from medseq.tasks.ecg import cinc2017_labels

    signals = {record_number(s.record_id): s for s in data.signals}
    labels = cinc2017_labels(data.labels)
    labels.index = pd.Index([record_number(r) for r in labels.index], name="subject_id")
    return CincData(signals=signals, labels=labels.astype(np.int64), report=data.report)


def read(path: Path, *, max_records: int | None = None) -> CincData:
    """Read the recordings under ``path`` (folder or ``.tar.xz`` part) with their labels."""
    from medseq.sources import physionet2017

    return from_set(physionet2017.read(path, max_records=max_records))


def _labels(task: str, data: CincData) -> pd.Series:
    if task != "rhythm":
        raise ValueError(f"unknown CinC 2017 task {task!r}; supported: ['rhythm']")
    return data.labels


def _kind(features: dict[str, Any]) -> str:
    kind = features.get("kind", "signal")
    if kind not in KINDS:
        raise ValueError(f"[features] kind must be one of {KINDS} for cinc2017, got {kind!r}")
    check_known_keys(
        f"[features] (cinc2017, kind={kind!r})",
        features,
        ("kind", *FEATURIZER_KEYS[kind], *AUGMENT_KEYS[kind], *OTHER_KEYS[kind]),
    )
    for key in ("rhythm_summary", "beat_morphology", "qrs_shape"):
        if not isinstance(features.get(key, False), bool):
            raise ValueError(f"[features] {key} must be true or false, got {features[key]!r}")
    if features.get("beat_morphology", False) and not features.get("rhythm_summary", False):
        raise ValueError("[features] beat_morphology = true needs rhythm_summary = true")
    return kind


def _signals(data: CincData, ids: np.ndarray) -> list[Signal]:
    missing = [int(i) for i in ids if int(i) not in data.signals]
    if missing:
        raise DataError(f"CinC 2017: no recording for subject ids {missing[:5]}")
    return [data.signals[int(i)] for i in ids]


def fit_featurizer(features: dict[str, Any], data: CincData, ids: np.ndarray) -> Any:
    """A :class:`SignalFeaturizer` or an XQRS :class:`BeatFeaturizer` fitted on ``ids``."""
    from medseq.features.signals.signal_featurizer import SignalFeaturizer

    kind = _kind(features)
    signals = _signals(data, ids)
    if kind == "signal":
        options = {k: v for k, v in features.items() if k in FEATURIZER_KEYS[kind]}
        return SignalFeaturizer(**options).fit(signals)
    return fit_beats(beat_featurizer(features), signals)


def beat_featurizer(features: dict[str, Any]) -> BeatFeaturizer:
    """The unfitted XQRS featurizer of ``[features]`` with ``kind = "beats"`` (a
    :class:`RhythmBeatFeaturizer` with ``rhythm_summary``); other keys are ignored."""
    from medseq.features.signals.beat_featurizer import BeatFeaturizer
    from medseq.features.signals.rhythm_summary import RhythmBeatFeaturizer

    options = {k: v for k, v in features.items() if k in FEATURIZER_KEYS["beats"]}
    if features.get("rhythm_summary", False):
        morphology = features.get("beat_morphology", False)
        return RhythmBeatFeaturizer(peaks="xqrs", beat_morphology=morphology, **options)
    return BeatFeaturizer(peaks="xqrs", **options)


def fit_beats(featurizer: Any, signals: list[Signal]) -> BeatFeaturizer:
    """Fit the beat z-scoring (and the summaries' z-scoring) on the training ``signals``."""
    if featurizer.kind == "beats_rhythm":
        featurizer.fit_summaries(signals)
    return featurizer.fit([featurizer.raw_features(s)[0] for s in signals])


def transform(featurizer: Any, data: CincData, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Model inputs ``values``/``lengths`` of ``ids`` (samples or beats per step), and
    ``static`` (the z-scored rhythm summaries) for a :class:`RhythmBeatFeaturizer`."""
    return featurizer.transform(_signals(data, ids))


def _sizes(featurizer: Any) -> dict[str, int]:
    if featurizer.kind == "beats_rhythm":
        return {"in_channels": featurizer.n_features, "static_size": featurizer.n_summaries}
    if featurizer.kind == "beats":
        return {"in_channels": featurizer.n_features}
    return {"in_channels": int(featurizer.n_channels)}


def _class_names(task: str, data: CincData) -> list[str]:
    from medseq.tasks.ecg import CINC2017_CLASSES

    return list(CINC2017_CLASSES)


def metrics(task: str, y_true: np.ndarray, y_prob: np.ndarray) -> dict[str, float]:
    """The challenge F1: mean F1 of N, A and O of the argmax predictions."""
    from medseq.tasks.ecg import challenge_f1

    y = np.asarray(y_true)
    keep = ~np.isnan(y)
    return {"challenge_f1": challenge_f1(y[keep].astype(int), np.argmax(y_prob[keep], axis=1))}


def _augment(features: dict[str, Any], featurizer: Any) -> Any:
    from medseq.datasets.ecg_augment import RandomCropAugment

    if featurizer.kind in BEAT_KINDS:
        beats = features.get("crop_beats")
        return None if beats is None else RandomCropAugment(int(beats))
    seconds = features.get("crop_seconds")
    if seconds is None:
        return None
    return RandomCropAugment(round(float(seconds) * featurizer.target_fs_hz))


def step_times(featurizer: Any, data: CincData, ids: np.ndarray) -> list[np.ndarray]:
    """Seconds from the recording start of each beat of the ``values`` of ``ids`` (its R
    peak); a recording with no detected beat has its one zero beat at 0 s."""
    if featurizer.kind not in BEAT_KINDS:
        raise ValueError(
            f"CinC 2017 step times are beat times; a {featurizer.kind!r} featurizer steps "
            "in samples (time = index / target_fs_hz)"
        )
    out = []
    for signal in _signals(data, ids):
        matrix, peaks = featurizer.features(signal)
        out.append(peaks / float(signal.fs_hz) if len(matrix) else np.zeros(1))
    return out


#: Stages that make no sense for ECG recordings, and why.
UNSUPPORTED = {
    "streaming": (
        "a recording model reads a whole 9-60 s recording at once, so it has no state to "
        "carry sample by sample; ECGs stream through a beat bundle's signal_streaming "
        "(/v1/streams), and AF from CinC 2017 through `medseq monitor --af-model`"
    ),
}


def _record_blocks(data, labels, *, n_sites: int, alpha: float, seed: int) -> pd.Series:
    """Blocks of 100 consecutive record numbers kept whole, spread over ``n_sites``."""
    return partitions.by_group(pd.Series(labels.index // 100, index=labels.index), n_sites, seed)


def _iid(data, labels, *, n_sites: int, alpha: float, seed: int) -> pd.Series:
    return partitions.iid(labels.index.to_numpy(), n_sites, seed)


def federated_fit(features: dict[str, Any]) -> Any:
    """The featurizer of ``[features]`` fitted across sites from per-site moments."""
    from medseq.features.signals.federated import BeatFederatedFit, SignalFederatedFit
    from medseq.features.signals.signal_featurizer import SignalFeaturizer

    if _kind(features) == "signal":
        options = {k: v for k, v in features.items() if k in FEATURIZER_KEYS["signal"]}
        return SignalFederatedFit(lambda: SignalFeaturizer(**options), _site_signals)
    return BeatFederatedFit(lambda: beat_featurizer(features), _site_signals)


def _site_signals(data: CincData, ids: np.ndarray) -> list[Signal]:
    return _signals(data, ids)

_SERVING = "medseq.datasets.ecg_serving"
RECORDS_EXAMPLE = {
    "records": [
        {
            "record_id": "A00001",
            "fs_hz": 300,
            "samples": [[-0.127, -0.162, -0.197, -0.229, -0.245, -0.250, -0.238, -0.220]],
            "channel_names": ["lead I"],
        }
    ]
}
FHIR_EXAMPLE = {
    "resourceType": "Bundle",
    "type": "collection",
    "entry": [
        {
            "resource": {
                "resourceType": "Observation",
                "id": "A00001",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "131328",
                                     "display": "MDC_ECG_ELEC_POTL"}]},
                "subject": {"reference": "Patient/p1"},
                "valueSampledData": {"origin": {"value": 0}, "period": 3.3333333333,
                                     "factor": 0.001, "dimensions": 1,
                                     "data": "-127 -162 -197 -229 -245 -250 -238 -220"},
            }
        }
    ],
}  # fmt: skip

CINC2017 = DatasetSpec(
    name="cinc2017",
    tasks={"rhythm": "multiclass"},
    read=read,
    labels=_labels,
    fit_featurizer=fit_featurizer,
    transform=transform,
    model_sizes=_sizes,
    class_names=_class_names,
    metrics=metrics,
    augment=_augment,
    request=LazyBody(f"{_SERVING}:parse_cinc", "ecg", RECORDS_EXAMPLE),
    fhir=LazyBody(f"{_SERVING}:parse_cinc_fhir", "ecg", FHIR_EXAMPLE),
    step_times=step_times,
    unsupported=UNSUPPORTED,
    partitions={
        "dirichlet": partitions.dirichlet,
        "record_blocks": _record_blocks,
        "iid": _iid,
    },
    federated_fit=federated_fit,
)
