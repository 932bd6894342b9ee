"""ECG recordings over REST: the request bodies of the CinC 2017 and MIT-BIH specs.

Imported on the first request (pydantic), never when a dataset is read for training.

Arrays (``request`` part)::

    {"records": [{"record_id": "A00001", "fs_hz": 300,
                  "samples": [[...lead 1...], [...lead 2...]],   # or one flat list
                  "channel_names": ["MLII", "V1"], "units": ["mV", "mV"],
                  "r_peaks": [77, 370, ...],                     # MIT-BIH only
                  "beats": [1, 2]}]}                             # MIT-BIH only

``samples`` are physical values (mV), channel by channel. A CinC 2017 record is answered
once (its rhythm). A MIT-BIH record carries the R-peak sample positions of its beats (the
reference annotations, or a QRS detector's) and the indices of the beats to classify
(``beats``, default all); each beat is answered as ``<record_id>/<beat index>``. A MIT-BIH +
SVDB bundle also needs ``channel_names`` (its primary lead, ``MLII`` or ``ECG1``): the record
is resampled from its ``fs_hz`` to the bundle's 128 Hz as training did.

FHIR R4 (``fhir`` part, CinC 2017): a Bundle of ``Observation`` resources whose
``valueSampledData`` (or each ``component``'s, one per lead) holds the samples:
``origin.value + factor * data``, ``period`` milliseconds between samples (so
``fs_hz = 1000 / period``), ``dimensions`` 1; the record id is the Observation's ``id``
(else its subject's id).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import Field

from medseq.schema import DataError, Signal
from medseq.serving.requests import (
    MAX_ITEMS,
    Parsed,
    RequestContext,
    RequestError,
    fhir_bundle,
    fhir_subject,
    item_ids,
    validate,
)
from medseq.serving.schemas import Number, PatientId, Strict

#: 10 minutes at 1 kHz: longer recordings are cut by the client (the body limit applies too).
MAX_SAMPLES = 600_000
Samples = Annotated[list[Number], Field(min_length=1, max_length=MAX_SAMPLES)]


class RecordIn(Strict):
    """One recording: samples per channel (or one flat list), sampling rate, lead names."""

    record_id: PatientId
    fs_hz: Number = Field(gt=0, le=10_000, description="Sampling rate in hertz.")
    samples: Samples | list[Samples] = Field(description="Channels × samples, in mV.")
    channel_names: list[str] | None = Field(default=None, max_length=16)
    units: list[str] | None = Field(default=None, max_length=16)
    r_peaks: list[Annotated[int, Field(ge=0)]] | None = Field(default=None, max_length=20_000)
    beats: list[Annotated[int, Field(ge=0)]] | None = Field(default=None, max_length=20_000)


class RecordsRequest(Strict):
    """``POST /v1/predict`` for ECG bundles (arrays form)."""

    records: list[RecordIn] = Field(min_length=1, max_length=MAX_ITEMS)


def _signal(record: RecordIn, k: int, peaks: list[int] | None = None) -> Signal:
    """A validated :class:`Signal` of a request's record; errors name the record's field."""
    rows = record.samples if isinstance(record.samples[0], list) else [record.samples]
    lengths = {len(r) for r in rows}
    where = ("body", "records", k)
    if len(lengths) != 1:
        raise RequestError.at((*where, "samples"), "every channel needs the same length")
    n_channels = len(rows)
    names = record.channel_names or [f"ch{c}" for c in range(n_channels)]
    units = record.units or ["mV"] * n_channels
    for key, values in (("channel_names", names), ("units", units)):
        if len(values) != n_channels:
            raise RequestError.at((*where, key), f"needs one entry per channel ({n_channels})")
    n = lengths.pop()
    positions = np.asarray(peaks or [], dtype=np.int64)
    if positions.size and (positions.max() >= n or np.any(np.diff(positions) <= 0)):
        raise RequestError.at((*where, "r_peaks"), f"must increase and stay below {n} samples")
    try:
        return Signal(
            record_id=record.record_id,
            samples=np.asarray(rows, dtype=np.float32).T,
            fs_hz=float(record.fs_hz),
            channel_names=tuple(names),
            units=tuple(units),
            annotation_samples=positions,
            annotation_symbols=("N",) * positions.size,
        )
    except DataError as err:
        raise RequestError.at(where, str(err)) from None


def parse_cinc(body: Any, context: RequestContext) -> Parsed:
    """Arrays body -> :class:`~medseq.datasets.cinc2017.CincData` (ids 0..N-1)."""
    from medseq.datasets.cinc2017 import CincData

    request = validate(RecordsRequest, body)
    names = [r.record_id for r in request.records]
    item_ids(names, ("body", "records"))
    signals = {k: _signal(r, k) for k, r in enumerate(request.records)}
    locs: list[tuple[str | int, ...]] = [("body", "records", k, "samples") for k in signals]
    return _cinc(CincData, signals, names, locs)


def _cinc(
    cls: Any, signals: dict[int, Signal], names: list[str], locs: list[tuple[str | int, ...]]
) -> Parsed:
    ids = np.arange(len(signals), dtype=np.int64)
    labels = pd.Series(np.zeros(0, np.int64), index=pd.Index([], dtype=np.int64))
    return Parsed(cls(signals=signals, labels=labels), ids, names, locs=locs)


def parse_mitbih(body: Any, context: RequestContext) -> Parsed:
    """Arrays body (with ``r_peaks``) -> :class:`~medseq.datasets.mitbih.MitbihData`."""
    return _beats(body, lambda record, signal, where: signal)


def parse_mitbih_svdb(body: Any, context: RequestContext) -> Parsed:
    """Arrays body (with ``r_peaks``, ``fs_hz`` and lead names) of a MIT-BIH + SVDB bundle.

    The bundle reads records at 128 Hz with the primary lead first; each record is brought
    there by :func:`medseq.datasets.mitbih_svdb.harmonise_named`, the resampler training
    used (its R peaks scaled with it), so a 360 Hz MIT-BIH record and a 128 Hz SVDB record
    are both read at the bundle's rate. ``channel_names`` is required: the primary lead is
    found by its name (``MLII`` or ``ECG1``).
    """
    from medseq.datasets.mitbih_svdb import harmonise_named

    second = bool(getattr(context.featurizer, "second_lead", False))

    def prepare(record: RecordIn, signal: Signal, where: tuple) -> Signal:
        if not record.channel_names:
            raise RequestError.at((*where, "channel_names"), "name the leads (MLII or ECG1 first)")
        try:
            out = harmonise_named(signal)
        except DataError as err:
            raise RequestError.at((*where, "channel_names"), str(err)) from None
        if second and out.samples.shape[1] < 2:
            raise RequestError.at((*where, "samples"), "the bundle reads a second lead: send two")
        return out

    return _beats(body, prepare)


def _beats(body: Any, prepare: Callable[[RecordIn, Signal, tuple], Signal]) -> Parsed:
    """A beats body -> :class:`~medseq.datasets.mitbih.MitbihData`, each record's signal
    passed through ``prepare(record, signal, loc)`` (the dataset's rate and lead
    convention; ``loc`` is where the record is in the body, for errors)."""
    from medseq.datasets.mitbih import ID_STRIDE, MitbihData
    from medseq.schema import ReadReport

    request = validate(RecordsRequest, body)
    item_ids([r.record_id for r in request.records], ("body", "records"))
    signals, rows, names = {}, [], []
    for k, record in enumerate(request.records):
        where = ("body", "records", k)
        if not record.r_peaks:
            raise RequestError.at((*where, "r_peaks"), "a beat classifier needs the R peaks")
        signals[str(k)] = prepare(record, _signal(record, k, record.r_peaks), where)
        chosen = record.beats if record.beats is not None else range(len(record.r_peaks))
        for index in chosen:
            if index >= len(record.r_peaks):
                raise RequestError.at((*where, "beats"), f"beat {index} is not in r_peaks")
            rows.append((k * ID_STRIDE + index, str(k), index, -1))
            names.append(f"{record.record_id}/{index}")
    if not rows:
        raise RequestError.at(("body", "records"), "no beat to classify")
    beats = pd.DataFrame(rows, columns=["subject_id", "record", "index", "label"])
    report = ReadReport(source="request", n_subjects=len(rows))
    data = MitbihData(signals=signals, beats=beats.set_index("subject_id"), report=report)
    return Parsed(data, beats["subject_id"].to_numpy(), names)


def parse_cinc_fhir(body: Any, context: RequestContext) -> Parsed:
    """A FHIR Bundle of Observations with ``valueSampledData`` -> CinC 2017 records."""
    from medseq.datasets.cinc2017 import CincData

    bundle = fhir_bundle(body)
    signals: dict[int, Signal] = {}
    names: list[str] = []
    locs: list[tuple[str | int, ...]] = []
    for i, entry in enumerate(bundle.entry or []):
        res = entry.resource
        if type(res).__name__ != "Observation":
            continue
        name = res.id or fhir_subject(res, i) or f"observation-{i}"
        signals[len(signals)] = _sampled_signal(res, i, name)
        names.append(name)
        locs.append(("body", "entry", i, "resource", "valueSampledData"))
    if not signals:
        raise RequestError.at(("body", "entry"), "the Bundle holds no Observation")
    item_ids(names, ("body", "entry"))
    return _cinc(CincData, signals, names, locs)


def _sampled_signal(res: Any, i: int, name: str) -> Signal:
    where = ("body", "entry", i, "resource")
    parts: list[tuple[Any, Any, tuple]] = [
        (res.code, res.valueSampledData, (*where, "valueSampledData"))
    ]
    if res.valueSampledData is None:
        parts = [
            (c.code, c.valueSampledData, (*where, "component", j, "valueSampledData"))
            for j, c in enumerate(res.component or [])
            if c.valueSampledData is not None
        ]
    if not parts:
        raise RequestError.at((*where, "valueSampledData"), "an ECG Observation needs samples")
    rows: list[np.ndarray] = []
    periods: set[float] = set()
    leads: list[str] = []
    for code, sampled, loc in parts:
        rows.append(_sampled_values(sampled, loc))
        periods.add(float(sampled.period))
        leads.append(_lead_name(code, len(leads)))
    if len(periods) != 1 or len({len(r) for r in rows}) != 1:
        raise RequestError.at((*where, "component"), "every lead needs the same period and length")
    period_ms = periods.pop()
    if not period_ms > 0:
        raise RequestError.at((*parts[0][2], "period"), "must be > 0 milliseconds")
    try:
        return Signal(
            record_id=name,
            samples=np.asarray(rows, dtype=np.float32).T,
            fs_hz=1000.0 / period_ms,
            channel_names=tuple(leads),
            units=("mV",) * len(rows),
        )
    except DataError as err:
        raise RequestError.at(where, str(err)) from None


def _sampled_values(sampled: Any, loc: tuple) -> np.ndarray:
    if int(sampled.dimensions) != 1:
        raise RequestError.at((*loc, "dimensions"), "one lead per SampledData (dimensions 1)")
    try:
        values = np.array((sampled.data or "").split(), dtype=np.float64)
    except ValueError:
        raise RequestError.at((*loc, "data"), "must be numbers separated by spaces") from None
    if values.size == 0 or values.size > MAX_SAMPLES or not np.isfinite(values).all():
        raise RequestError.at((*loc, "data"), f"needs 1..{MAX_SAMPLES} finite numbers")
    origin = float(sampled.origin.value or 0.0)
    factor = 1.0 if sampled.factor is None else float(sampled.factor)
    return origin + factor * values


def _lead_name(code: Any, k: int) -> str:
    codings = list(getattr(code, "coding", None) or [])
    for coding in codings:
        if coding.display or coding.code:
            return str(coding.display or coding.code)
    return f"ch{k}"
