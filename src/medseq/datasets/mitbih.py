"""MIT-BIH Arrhythmia beats as a :class:`~medseq.datasets.registry.DatasetSpec`.

Task ``beat``: multiclass AAMI N / S / V / F per annotated beat (Q beats, 15 in the 44
non-paced records, are excluded from the labels and counted in the read report). A sample is
one beat, read with its ``context_beats`` predecessors by a ``ConvRNN`` with
``conv_channels = []`` and ``pooling = "last"``: the recurrence sees the rhythm leading up
to the beat, the classifier reads out at the beat itself.

Protocol ``de_chazal`` (de Chazal et al. 2004, inter-patient): test = every beat of DS2;
training and validation come from DS1 only, validation being the DS1 records
:data:`VALIDATION_RECORDS` held out whole (so early stopping never sees DS2, and no record
is on two sides). The paced records 102, 104, 107 and 217 are not read at all.

Subject ids: ``int(record) * 100_000 + beat index`` (index among the record's beat
annotations), so each id names one beat and its record is ``id // 100_000``.

``[features]`` keys: the :class:`~medseq.features.signals.beat_featurizer.BeatFeaturizer` options
(``lead``, ``low_hz``, ``high_hz``, ``before_s``, ``after_s``, ``segment_fs_hz``,
``local_beats``, ``morphology``, ``local_ratios``, ``context_beats``, ``qrs_shape``,
``second_lead``, ``record_relative``, ``local_template``, ``local_rhythm``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from medseq.datasets.registry import DatasetSpec, SplitIds
from medseq.datasets.signal_streaming import SignalStreaming
from medseq.schema import DataError, ReadReport, Signal, check_known_keys
from medseq.serving.requests import LazyBody

if TYPE_CHECKING:
    from medseq.features.signals.beat_featurizer import BeatFeaturizer

logger = logging.getLogger(__name__)

BEAT_CLASSES: tuple[str, ...] = ("N", "S", "V", "F")
ID_STRIDE = 100_000
VALIDATION_RECORDS: tuple[str, ...] = ("116", "201", "220")
"""DS1 records held out for validation: 223 S and 307 V beats in all (220: 94 S; 201:
128 S, 198 V; 116: 109 V), leaving the S-richest records (209, 118, 207, 223) to training."""
FEATURIZER_KEYS = (
    "lead",
    "low_hz",
    "high_hz",
    "before_s",
    "after_s",
    "segment_fs_hz",
    "local_beats",
    "morphology",
    "local_ratios",
    "context_beats",
    "qrs_shape",
    "second_lead",
    "record_relative",
    "local_template",
    "local_rhythm",
)


@dataclass(frozen=True)
class MitbihData:
    """Records by name, and one row per labelled beat (``subject_id`` index)."""

    signals: dict[str, Signal]
    beats: pd.DataFrame  # columns: record, index, label (0..3 in BEAT_CLASSES order)
    report: ReadReport


def read_records(folder: Path, records: tuple[str, ...]) -> MitbihData:
    """Read ``records`` (lead signals and reference beats) from a WFDB folder."""
    from medseq.features.signals.beats import AAMI_CLASSES, beat_annotations
    from medseq.sources import wfdb_records
    from medseq.tasks.ecg import MITBIH_PACED

    paced = sorted(set(records) & set(MITBIH_PACED))
    if paced:
        raise DataError(f"paced records {paced} are excluded from AAMI beat classification")
    signals, rows, n_q = {}, [], 0
    for record in records:
        signal = wfdb_records.read_record(folder, record)
        signals[record] = signal
        _, classes = beat_annotations(signal)
        for index, code in enumerate(classes):
            name = AAMI_CLASSES[code]
            if name == "Q":
                n_q += 1
                continue
            rows.append((int(record) * ID_STRIDE + index, record, index, BEAT_CLASSES.index(name)))
    beats = pd.DataFrame(rows, columns=["subject_id", "record", "index", "label"])
    beats = beats.set_index("subject_id")
    report = ReadReport(source=str(folder), n_subjects=len(beats))
    report.add("Q beats excluded (AAMI unclassifiable)", n_q)
    return MitbihData(signals=signals, beats=beats, report=report)


def read(path: Path) -> MitbihData:
    """Every DS1 and DS2 record of the folder ``path`` (the paced records are not read).

    A folder's WFDB ``RECORDS`` file, when present, says which records it holds: the full
    database lists all 48, a subset folder (a quick look, a test) lists its own.
    """
    from medseq.tasks.ecg import mitbih_split

    ds1, ds2 = mitbih_split()
    records, listing = ds1 + ds2, Path(path) / "RECORDS"
    if listing.is_file():
        present = set(listing.read_text().split())
        records = tuple(r for r in records if r in present)
        if not records:
            raise DataError(f"{listing}: lists none of the DS1/DS2 records {ds1 + ds2}")
    return read_records(Path(path), records)


def _labels(task: str, data: MitbihData) -> pd.Series:
    if task != "beat":
        raise ValueError(f"unknown MIT-BIH task {task!r}; supported: ['beat']")
    return data.beats["label"].astype(np.int64)


def fit_featurizer(features: dict[str, Any], data: MitbihData, ids: np.ndarray) -> BeatFeaturizer:
    """A :class:`BeatFeaturizer` (annotated R peaks) z-scored on the records of ``ids``."""
    from medseq.features.signals.beat_featurizer import BeatFeaturizer

    check_known_keys("[features] (mitbih)", features, FEATURIZER_KEYS)
    featurizer = BeatFeaturizer(peaks="annotations", **features)
    records = sorted({str(r) for r in data.beats.loc[ids, "record"]})
    return featurizer.fit([featurizer.raw_features(data.signals[r])[0] for r in records])


def transform(featurizer: BeatFeaturizer, data: MitbihData, ids: np.ndarray) -> dict:
    """Each beat of ``ids`` with its ``context_beats`` predecessors: ``values``, ``lengths``."""
    from medseq.features.signals.beat_featurizer import beat_context

    ids = np.asarray(ids, dtype=np.int64)
    unknown = np.setdiff1d(ids, data.beats.index.to_numpy())
    if unknown.size:
        raise DataError(f"MIT-BIH: unknown beat ids {unknown[:5].tolist()}")
    table = data.beats.loc[ids]
    width = featurizer.context_beats + 1
    values = np.zeros((len(ids), width, featurizer.n_features), np.float32)
    lengths = np.zeros(len(ids), np.int64)
    for record, where in table.groupby("record", sort=False).indices.items():
        matrix, _ = featurizer.features(data.signals[str(record)])
        rows = table["index"].to_numpy()[where]
        values[where], lengths[where] = beat_context(matrix, rows, featurizer.context_beats)
    return {"values": values, "lengths": lengths}


def step_times(featurizer: BeatFeaturizer, data: MitbihData, ids: np.ndarray) -> list[np.ndarray]:
    """Seconds from the record start of each step of the ``values`` of ``ids``: the R peaks
    of the beat and of the ``context_beats`` before it, in the order :func:`transform` reads
    them."""
    from medseq.features.signals.beat_featurizer import beat_context

    table = data.beats.loc[np.asarray(ids, dtype=np.int64)]
    out = []
    for record, row in zip(table["record"], table["index"], strict=True):
        signal = data.signals[str(record)]
        peaks = featurizer.features(signal)[1].astype(np.float64)[:, None]
        times, length = beat_context(peaks, np.array([row]), featurizer.context_beats)
        out.append(times[0, : int(length[0]), 0].astype(np.float64) / float(signal.fs_hz))
    return out


def _sizes(featurizer: BeatFeaturizer) -> dict[str, int]:
    return {"in_channels": featurizer.n_features}


def _class_names(task: str, data: MitbihData) -> list[str]:
    return list(BEAT_CLASSES)


def _ids_of(labels: pd.Series, records: tuple[str, ...]) -> np.ndarray:
    ids = labels.index.to_numpy()
    keep = np.isin(ids // ID_STRIDE, [int(r) for r in records])
    return ids[keep]


def de_chazal(spec: Any, data: MitbihData, labels: pd.Series) -> SplitIds:
    """Train: DS1 minus :data:`VALIDATION_RECORDS`; validation: those; test: DS2."""
    from medseq.tasks.ecg import MITBIH_DS1, MITBIH_DS2

    train_records = tuple(r for r in MITBIH_DS1 if r not in VALIDATION_RECORDS)
    folds = [(_ids_of(labels, train_records), _ids_of(labels, VALIDATION_RECORDS))]
    test = _ids_of(labels, MITBIH_DS2)
    for name, part in (("train", folds[0][0]), ("validation", folds[0][1]), ("test", test)):
        if part.size == 0:
            raise DataError(f"de_chazal: no {name} beats among the records read")
    return SplitIds(folds=folds, test=test)


def _records(task: str, data: MitbihData, ids: np.ndarray) -> np.ndarray:
    """The record behind each beat id: one patient's beats stay on one side of a split."""
    return np.asarray(ids, dtype=np.int64) // ID_STRIDE


def metrics(task: str, y_true: np.ndarray, y_prob: np.ndarray) -> dict[str, float]:
    """Per-class sensitivity (``se_*``) and positive predictivity (``ppv_*``), accuracy."""
    from medseq.evaluation.multi import confusion

    matrix = confusion(y_true, y_prob, len(BEAT_CLASSES)).astype(np.float64)
    tp = np.diag(matrix)
    out = {"accuracy": float(tp.sum() / max(matrix.sum(), 1.0))}
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.where(matrix.sum(1) > 0, tp / matrix.sum(1), np.nan)
        ppv = np.where(matrix.sum(0) > 0, tp / matrix.sum(0), np.nan)
    for k, name in enumerate(BEAT_CLASSES):
        out[f"se_{name}"], out[f"ppv_{name}"] = float(se[k]), float(ppv[k])
    return out


#: Stages that have no method for beats, and why.
UNSUPPORTED = {
    "POST /v1/predict with a FHIR Bundle": (
        "a beat classifier needs the R-peak positions of the beats, which a FHIR "
        "SampledData does not carry; send the arrays body with r_peaks"
    ),
}


def _record_sites(data: Any, labels: pd.Series, *, n_sites: int, alpha: float, seed: int):
    """Whole records (each one patient) spread over ``n_sites``, balancing the sites' beat
    counts: a simulated split, since MIT-BIH's 48 records all come from one laboratory.
    ``alpha`` is unused (the label mix of a site is that of its patients)."""
    from medseq.datasets import partitions

    records = pd.Series(labels.index.to_numpy() // ID_STRIDE, index=labels.index)
    return partitions.by_group(records, n_sites, seed)


def federated_fit(features: dict[str, Any]) -> Any:
    """The beat featurizer's z-scoring fitted from per-site column moments of the beats of
    the sites' own training records (:class:`~medseq.features.signals.federated.
    BeatFederatedFit`), equal to :func:`fit_featurizer` on the union of those records."""
    from medseq.features.signals.beat_featurizer import BeatFeaturizer
    from medseq.features.signals.federated import BeatFederatedFit

    check_known_keys("[features] (mitbih)", features, FEATURIZER_KEYS)
    options = dict(features)
    return BeatFederatedFit(lambda: BeatFeaturizer(peaks="annotations", **options), _site_records)


def _site_records(data: MitbihData, ids: np.ndarray) -> list[Signal]:
    """The recordings behind beat ``ids``, each once, by record name (what
    :func:`fit_featurizer` reads)."""
    records = sorted({str(r) for r in data.beats.loc[np.asarray(ids, np.int64), "record"]})
    return [data.signals[r] for r in records]


BEATS_EXAMPLE = {
    "records": [
        {
            "record_id": "100",
            "fs_hz": 360,
            "samples": [[-0.145, -0.145, -0.145, -0.145, -0.145, -0.145, -0.145, -0.145],
                        [-0.065, -0.065, -0.065, -0.065, -0.065, -0.065, -0.065, -0.065]],
            "channel_names": ["MLII", "V1"],
            "r_peaks": [2, 5],
            "beats": [1],
        }
    ]
}  # fmt: skip

MITBIH = DatasetSpec(
    name="mitbih",
    tasks={"beat": "multiclass"},
    read=read,
    labels=_labels,
    fit_featurizer=fit_featurizer,
    transform=transform,
    model_sizes=_sizes,
    class_names=_class_names,
    protocols={"de_chazal": de_chazal},
    metrics=metrics,
    groups=_records,
    request=LazyBody("medseq.datasets.ecg_serving:parse_mitbih", "ecg_beats", BEATS_EXAMPLE),
    step_times=step_times,
    signal_streaming=SignalStreaming(fs_hz=(360.0,), lead="MLII"),
    partitions={"records": _record_sites},
    federated_fit=federated_fit,
    unsupported=UNSUPPORTED,
)
