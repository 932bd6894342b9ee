"""MIT-BIH Arrhythmia + MIT-BIH Supraventricular Arrhythmia (SVDB) beats, one convention.

Why: the de Chazal inter-patient split leaves 22 DS1 records for training, with too few
supraventricular (S) beats from too few patients (41 % of them in record 209). SVDB adds
58 half-hour records rich in S beats, so the model is trained on DS1 + SVDB and still
tested on every beat of DS2, patients it never saw.

One sampling rate, one lead convention
--------------------------------------
* **128 Hz.** MIT-BIH (360 Hz) is downsampled to SVDB's 128 Hz with a polyphase
  anti-aliasing filter (:func:`scipy.signal.resample_poly`, 16/45). Going down loses only
  content above 64 Hz, which the beat featurizer's 0.5-40 Hz band-pass removes anyway;
  going up (SVDB to 360 Hz) would invent no information and cost 2.8x the samples.
  Reference beat positions move to ``round(sample * 128 / 360)``: at most half a 128 Hz
  sample (3.9 ms) from the original R peak.
* **Leads.** Every record becomes two channels named ``ECG1`` (primary) and ``ECG2``.
  For MIT-BIH, ``ECG1`` is MLII (channel 1 in record 114, where the leads are swapped;
  channel 0 otherwise, i.e. V5 in the paced records, which are not read) and ``ECG2`` the
  other lead (V1 mostly). For SVDB, ``ECG1`` and ``ECG2`` are channels 0 and 1 (the staged
  headers do not name the leads; the current upstream headers call them ECG1/ECG2). SVDB's
  leads are not documented as MLII/V1, which is why the configs use patient-relative
  features (RR over the record's own mean RR, template matching against the record's own
  median beat): they compare a beat with the same patient's usual beat on the same lead,
  so they do not need the two databases' leads to be the same.

Labels: AAMI N / S / V / F (:data:`~medseq.features.signals.beats.AAMI_MAP`, where SVDB's
``S`` maps to S as MIT-BIH's ``A`` does); Q beats are excluded and counted, like SVDB's one
``B`` beat (record 868), which is in no EC57 class and is not a beat symbol here.

Protocol ``inter_patient``: test = every beat of DS2 (MIT-BIH), as in ``mitbih``; the
training records (DS1 + the SVDB records read) are cut into :data:`N_FOLDS` record-disjoint
folds (:func:`record_folds`), each fold scored out-of-fold by a model trained on the
others: the selection criterion reads those out-of-fold predictions only, never DS2. Set
``[data] inner_val_fraction`` so members early-stop on held-out training records, not on
the fold they are scored on.

Subject ids as in ``mitbih``: ``int(record) * 100_000 + beat index``; MIT-BIH records are
100-234 and SVDB records 800-894, so ids never collide and ``id // 100_000`` is the record.

``[data] train`` names the SVDB folder; the MIT-BIH records are read from the folder
``mitdb_full`` beside it (:data:`MITBIH_FOLDER`).

Serving and sites
-----------------
A request or a stream states its rate and names its leads; it is brought to the
convention above by the training resampler (:func:`harmonise_named`: the lead named MLII
or ECG1 first, then :func:`resample`), so a 360 Hz MIT-BIH body is read as the bundle's
128 Hz records were (``POST /v1/predict``, :mod:`medseq.datasets.ecg_serving`; streams:
:mod:`medseq.monitoring.resampled`). Partitions: ``records`` (whole records over
``n_sites``, as ``mitbih``) and ``databases`` (two real sites: MIT-BIH and SVDB).
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medseq.datasets import mitbih
from medseq.datasets.mitbih import BEAT_CLASSES, ID_STRIDE, MitbihData
from medseq.datasets.registry import DatasetSpec, SplitIds
from medseq.datasets.signal_streaming import SignalStreaming
from medseq.schema import DataError, ReadReport, Signal
from medseq.serving.requests import LazyBody

logger = logging.getLogger(__name__)

TARGET_FS_HZ = 128.0
#: The folder, beside the SVDB folder, that holds the MIT-BIH Arrhythmia records.
MITBIH_FOLDER = "mitdb_full"
#: Channel names of every harmonised record: primary lead, other lead.
LEADS: tuple[str, str] = ("ECG1", "ECG2")
#: Record-disjoint folds of the training records for the selection CV.
N_FOLDS = 5
SVDB_FIRST, SVDB_LAST = 800, 899


def resample(signal: Signal, fs_hz: float = TARGET_FS_HZ) -> Signal:
    """``signal`` at ``fs_hz``: samples through a polyphase anti-aliasing resampler,
    annotation positions scaled and rounded to the nearest new sample.

    Raises
    ------
    DataError
        If two annotations would land on one sample (they were closer than one new
        sample period), which would silently merge two beats.
    """
    from scipy.signal import resample_poly

    if signal.fs_hz == fs_hz:
        return signal
    ratio = Fraction(fs_hz / signal.fs_hz).limit_denominator(1000)
    samples = resample_poly(
        signal.samples.astype(np.float64), ratio.numerator, ratio.denominator, axis=0
    )
    n_new = samples.shape[0]
    positions = np.round(signal.annotation_samples * (fs_hz / signal.fs_hz)).astype(np.int64)
    positions = np.clip(positions, 0, n_new - 1)
    return Signal(
        record_id=signal.record_id,
        samples=samples.astype(np.float32),
        fs_hz=fs_hz,
        channel_names=signal.channel_names,
        units=signal.units,
        annotation_samples=positions,
        annotation_symbols=signal.annotation_symbols,
    )


def primary_channel(signal: Signal, source: str) -> int:
    """Index of the primary lead: MLII for MIT-BIH, channel 0 for SVDB."""
    if source == "mitbih" and "MLII" in signal.channel_names:
        return signal.channel_names.index("MLII")
    return 0


def harmonise(signal: Signal, source: str, fs_hz: float = TARGET_FS_HZ) -> Signal:
    """``signal`` at ``fs_hz`` with its primary lead first, channels named :data:`LEADS`."""
    if signal.samples.shape[1] != 2:
        raise DataError(
            f"{source} record {signal.record_id}: expected 2 ECG channels, "
            f"got {signal.samples.shape[1]}"
        )
    first = primary_channel(signal, source)
    order = [first, 1 - first]
    reordered = Signal(
        record_id=signal.record_id,
        samples=signal.samples[:, order],
        fs_hz=signal.fs_hz,
        channel_names=LEADS,
        units=tuple(signal.units[i] for i in order),
        annotation_samples=signal.annotation_samples,
        annotation_symbols=signal.annotation_symbols,
    )
    return resample(reordered, fs_hz)


#: Lead names a request may give its primary lead: MIT-BIH's MLII, or SVDB's channel 0.
PRIMARY_LEADS: tuple[str, ...] = ("MLII", LEADS[0])


def harmonise_named(signal: Signal, fs_hz: float = TARGET_FS_HZ) -> Signal:
    """A recording whose leads are named (a request, a stream), by :func:`harmonise`'s
    convention: the lead named in :data:`PRIMARY_LEADS` first, at ``fs_hz``.

    Unlike a file of either database, a request's source is not known, so the primary
    lead is found by its name. One channel (the primary lead alone) or two are accepted.

    Raises
    ------
    DataError
        If no channel is a primary lead, two are, or there are more than two channels.
    """
    names = list(signal.channel_names)
    primary = [k for k, name in enumerate(names) if name in PRIMARY_LEADS]
    if len(names) > 2 or len(primary) != 1:
        raise DataError(
            f"record {signal.record_id}: channel_names {names} must hold one primary lead "
            f"(one of {list(PRIMARY_LEADS)}) and at most one other lead; the model reads "
            f"{LEADS[0]}, the MIT-BIH MLII or SVDB's first channel"
        )
    order = [primary[0], *(k for k in range(len(names)) if k != primary[0])]
    reordered = Signal(
        record_id=signal.record_id,
        samples=signal.samples[:, order],
        fs_hz=signal.fs_hz,
        channel_names=LEADS[: len(order)],
        units=tuple(signal.units[i] for i in order),
        annotation_samples=signal.annotation_samples,
        annotation_symbols=signal.annotation_symbols,
    )
    return resample(reordered, fs_hz)


def svdb_records(folder: Path) -> tuple[str, ...]:
    """The SVDB records of ``folder``: its ``RECORDS`` file, else its ``*.hea`` files.

    The staged copy holds 58 of the 78 records (the other 20 are an external test set), so
    the records found are used and none is expected by number.
    """
    from medseq.sources import wfdb_records

    records = tuple(wfdb_records.list_records(folder))
    if not records:
        raise DataError(f"{folder}: no SVDB records (no RECORDS file and no *.hea files)")
    bad = [r for r in records if not (r.isdigit() and SVDB_FIRST <= int(r) <= SVDB_LAST)]
    if bad:
        raise DataError(
            f"{folder}: {bad[:5]} are not SVDB record names (numbers {SVDB_FIRST}-{SVDB_LAST})"
        )
    return records


def read_svdb_record(folder: Path, record: str) -> Signal:
    """One SVDB record (128 Hz, 2 channels, reference beats) as read, not yet harmonised.

    Raises
    ------
    FileNotFoundError
        If the header, signal or annotation file is missing.
    DataError
        If a file is corrupt or truncated, or the record is not 128 Hz two-channel ECG.
    """
    from medseq.sources import wfdb_records

    signal = wfdb_records.read_record(folder, record)
    if signal.fs_hz != TARGET_FS_HZ or signal.samples.shape[1] != 2:
        raise DataError(
            f"{folder / record}: SVDB records are 2 channels at 128 Hz, this one has "
            f"{signal.samples.shape[1]} at {signal.fs_hz:g} Hz"
        )
    if not len(signal.annotation_symbols):
        raise DataError(f"{folder / record}.atr: no annotations")
    return signal


def _beat_rows(signal: Signal, report_counts: dict[str, int]) -> list[tuple[int, str, int, int]]:
    from medseq.features.signals.beats import AAMI_CLASSES, beat_annotations

    _, classes = beat_annotations(signal)
    rows = []
    for index, code in enumerate(classes):
        name = AAMI_CLASSES[code]
        if name == "Q":
            report_counts["q"] += 1
            continue
        record = signal.record_id
        rows.append((int(record) * ID_STRIDE + index, record, index, BEAT_CLASSES.index(name)))
    report_counts["b"] += sum(1 for s in signal.annotation_symbols if s == "B")
    return rows


def read_both(
    svdb_folder: Path,
    mitbih_folder: Path,
    svdb: tuple[str, ...] | None = None,
    mitdb: tuple[str, ...] | None = None,
) -> MitbihData:
    """The MIT-BIH DS1/DS2 records and the SVDB records, harmonised (:func:`harmonise`).

    ``svdb`` / ``mitdb`` restrict the records (tests, quick looks); by default every SVDB
    record of the folder and every DS1 and DS2 record listed in the MIT-BIH folder.
    """
    from medseq.sources import wfdb_records
    from medseq.tasks.ecg import mitbih_split

    svdb_folder, mitbih_folder = Path(svdb_folder), Path(mitbih_folder)
    if not mitbih_folder.is_dir():
        raise DataError(
            f"{mitbih_folder}: the MIT-BIH Arrhythmia folder is missing; the mitbih_svdb "
            f"dataset reads it beside the SVDB folder {svdb_folder}"
        )
    if mitdb is None:
        ds1, ds2 = mitbih_split()
        present = set(wfdb_records.list_records(mitbih_folder))
        mitdb = tuple(r for r in ds1 + ds2 if r in present)
    svdb = svdb_records(svdb_folder) if svdb is None else svdb
    signals: dict[str, Signal] = {}
    rows: list[tuple[int, str, int, int]] = []
    counts = {"q": 0, "b": 0}
    for record in mitdb:
        raw = wfdb_records.read_record(mitbih_folder, record)
        signals[record] = harmonise(raw, "mitbih")
        rows += _beat_rows(signals[record], counts)
    for record in svdb:
        signals[record] = harmonise(read_svdb_record(svdb_folder, record), "svdb")
        rows += _beat_rows(signals[record], counts)
    beats = pd.DataFrame(rows, columns=["subject_id", "record", "index", "label"])
    beats = beats.set_index("subject_id")
    report = ReadReport(source=f"{mitbih_folder} + {svdb_folder}", n_subjects=len(beats))
    report.add("Q beats excluded (AAMI unclassifiable)", counts["q"])
    report.add("SVDB 'B' beats excluded (no EC57 class)", counts["b"])
    return MitbihData(signals=signals, beats=beats, report=report)


def read(path: Path) -> MitbihData:
    """The SVDB folder ``path`` and the MIT-BIH folder :data:`MITBIH_FOLDER` beside it."""
    path = Path(path)
    return read_both(path, path.parent / MITBIH_FOLDER)


def is_svdb(records: np.ndarray) -> np.ndarray:
    """Whether each record number is an SVDB one."""
    records = np.asarray(records)
    return (records >= SVDB_FIRST) & (records <= SVDB_LAST)


def record_folds(labels: pd.Series, records: list[int], n_folds: int) -> list[list[int]]:
    """``records`` dealt into ``n_folds`` record-disjoint folds balanced for S and V beats.

    Records are sorted by their S count, then V count, then beat count (largest first) and
    each goes to the fold with the fewest S beats so far (ties: fewest V, then fewest
    beats): deterministic, and it spreads the few S-rich records (SVDB 865, MIT-BIH 209)
    over different folds instead of leaving one fold without S beats.
    """
    rec = pd.Series(labels.index.to_numpy() // ID_STRIDE, index=labels.index)
    table = pd.crosstab(rec, labels).reindex(columns=range(len(BEAT_CLASSES)), fill_value=0)
    table = table.reindex(records, fill_value=0)
    s, v, total = table[1], table[2], table.sum(axis=1)
    order = sorted(records, key=lambda r: (-s[r], -v[r], -total[r], r))
    folds: list[list[int]] = [[] for _ in range(n_folds)]
    load = [[0, 0, 0] for _ in range(n_folds)]
    for r in order:
        k = min(range(n_folds), key=lambda i: (load[i][0], load[i][1], load[i][2], i))
        folds[k].append(int(r))
        load[k] = [load[k][0] + int(s[r]), load[k][1] + int(v[r]), load[k][2] + int(total[r])]
    return [sorted(f) for f in folds]


def inter_patient(spec: Any, data: MitbihData, labels: pd.Series) -> SplitIds:
    """Test: DS2; folds: :data:`N_FOLDS` record-disjoint folds of DS1 + SVDB records."""
    from medseq.tasks.ecg import MITBIH_DS1, MITBIH_DS2

    records = np.unique(labels.index.to_numpy() // ID_STRIDE)
    training = [int(r) for r in records if is_svdb(r) or str(r) in MITBIH_DS1]
    test = mitbih._ids_of(labels, MITBIH_DS2)
    if test.size == 0:
        raise DataError("inter_patient: no DS2 (test) beats among the records read")
    if len(training) < N_FOLDS:
        raise DataError(
            f"inter_patient: {len(training)} training records, fewer than {N_FOLDS} folds"
        )
    ids = labels.index.to_numpy()
    folds = []
    for fold in record_folds(labels.loc[np.isin(ids // ID_STRIDE, training)], training, N_FOLDS):
        in_fold = np.isin(ids // ID_STRIDE, fold)
        in_training = np.isin(ids // ID_STRIDE, training)
        folds.append((ids[in_training & ~in_fold], ids[in_fold]))
    return SplitIds(folds=folds, test=test)


def _database_sites(data: Any, labels: pd.Series, *, n_sites: int, alpha: float, seed: int):
    """Two real sites: the MIT-BIH Arrhythmia records at ``mitbih`` (Beth Israel, 1975-79)
    and the SVDB records at ``svdb`` (a later collection, other leads and recorders), each
    record whole. ``n_sites`` must be 2; ``alpha`` and ``seed`` are unused (no draw)."""
    from medseq.datasets import partitions

    if n_sites != 2:
        raise ValueError(
            f"partition 'databases' has exactly 2 sites (mitbih, svdb), got n_sites={n_sites}"
        )
    svdb = is_svdb(labels.index.to_numpy() // ID_STRIDE).astype(np.int64)
    return partitions.by_column(pd.Series(svdb, index=labels.index), {0: "mitbih", 1: "svdb"})


UNSUPPORTED = dict(mitbih.UNSUPPORTED)

MITBIH_SVDB = DatasetSpec(
    name="mitbih_svdb",
    tasks={"beat": "multiclass"},
    read=read,
    labels=mitbih._labels,
    fit_featurizer=mitbih.fit_featurizer,
    transform=mitbih.transform,
    model_sizes=mitbih._sizes,
    class_names=mitbih._class_names,
    protocols={"inter_patient": inter_patient},
    metrics=mitbih.metrics,
    groups=mitbih._records,
    step_times=mitbih.step_times,
    signal_streaming=SignalStreaming(
        fs_hz=(TARGET_FS_HZ, 360.0), lead=LEADS[0], model_fs_hz=TARGET_FS_HZ, lead_names=("MLII",)
    ),
    partitions={"records": mitbih._record_sites, "databases": _database_sites},
    federated_fit=mitbih.federated_fit,
    request=LazyBody(
        "medseq.datasets.ecg_serving:parse_mitbih_svdb", "ecg_beats", mitbih.BEATS_EXAMPLE
    ),
    unsupported=UNSUPPORTED,
)
