"""Request bodies of the signal streams: opening a stream, and chunks as JSON or FHIR.

Opening (``PUT /v1/streams/{stream_id}``)::

    {"fs_hz": 360, "lead": "MLII", "start_time": "2024-03-01T08:00:00+00:00"}

``lead`` and ``start_time`` are optional; ``start_time`` (the time of sample 0) lets
chunks be placed by time instead of by index.

A chunk, JSON form (``POST /v1/streams/{stream_id}/samples``)::

    {"start": 3600, "fs_hz": 360, "samples": [0.12, 0.15, null, ...]}

``start`` is the index of the first sample on the stream's clock (or ``start_time``, a
FHIR dateTime); ``fs_hz`` is optional and checked against the stream's; a sample is a
number in mV or ``null`` (missing, a signal-quality state).

A chunk, FHIR R4 form: one ``Observation`` as a device sends it, its samples in
``valueSampledData`` (or in the ``component`` whose code names the bundle's lead):
value = ``origin.value + factor * data[i]``; ``period`` is milliseconds between samples
(``fs_hz = 1000 / period``); ``dimensions`` must be 1; ``data`` holds decimals separated by
spaces, or ``E`` (error: missing), ``L`` / ``U`` (below / above the detection limit: the
``lowerLimit`` / ``upperLimit`` value, a physical value like ``origin``; missing without
one). The first sample's time is
``effectiveDateTime`` (or ``effectiveInstant``, ``effectivePeriod.start``), a dateTime
with a time zone; ``Observation.id``, if present, is the chunk's idempotency key. The
origin's unit may be ``mV`` (default), ``uV`` or ``V`` (UCUM codes).

Every bad field is a 422 naming it; nothing here raises anything else.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import numpy as np

from medseq.serving.requests import RequestError
from medseq.serving.schemas import IDEMPOTENCY_KEY_PATTERN
from medseq.serving.signal_service import Chunk

#: FHIR dateTime with a time and a zone (seconds and fraction optional).
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})")
_DECIMAL = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")
#: UCUM unit of ``SampledData.origin`` -> factor to mV.
UNITS_TO_MV = {"mV": 1.0, "uV": 1e-3, "V": 1e3}
MAX_SAMPLES = 600_000
ACCEPTED_STATUS = ("final", "preliminary", "amended", "corrected")


def _err(loc: tuple, msg: str, kind: str = "value_error") -> RequestError:
    return RequestError.at(("body", *loc), msg, kind)


def parse_time(value: Any, loc: tuple) -> datetime:
    """A FHIR dateTime with a time and a zone (a number or a date alone is refused)."""
    if not isinstance(value, str) or not _DATETIME.fullmatch(value):
        raise _err(
            loc,
            "must be a FHIR dateTime with a time and a time zone "
            "(e.g. 2024-03-01T08:00:00.000+00:00)",
            "datetime_type",
        )
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _err(loc, "is not a valid date and time", "datetime_type") from None


def _number(value: Any, loc: tuple, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _err(loc, "must be a number", "number_type")
    x = float(value)
    if not np.isfinite(x) or (positive and x <= 0):
        raise _err(loc, "must be a finite number" + (" > 0" if positive else ""))
    return x


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise RequestError.at(("body",), "must be a JSON object", "dict_type")
    return body


def _known(body: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(k for k in body if k not in allowed)
    if extra:
        raise _err((str(extra[0])[:40],), f"unknown field; expected {sorted(allowed)}", "extra")


def parse_open(body: Any) -> tuple[float, str | None, datetime | None]:
    """(fs_hz, lead, start_time) of a ``PUT /v1/streams/{id}`` body."""
    body = _object(body)
    _known(body, {"fs_hz", "lead", "start_time"})
    if "fs_hz" not in body:
        raise _err(("fs_hz",), "is required (the sampling rate in hertz)", "missing")
    fs = _number(body["fs_hz"], ("fs_hz",), positive=True)
    lead = body.get("lead")
    if lead is not None and (not isinstance(lead, str) or not 0 < len(lead) <= 32):
        raise _err(("lead",), "must be a lead name (a string of 1-32 characters)")
    start = body.get("start_time")
    return fs, lead, None if start is None else parse_time(start, ("start_time",))


def _json_samples(values: Any) -> np.ndarray:
    loc = ("samples",)
    if not isinstance(values, list) or not values:
        raise _err(loc, "must be a non-empty list of numbers (mV) or null", "list_type")
    if len(values) > MAX_SAMPLES:
        raise _err(loc, f"holds more than {MAX_SAMPLES} samples")
    try:
        x = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        x = None
    if x is None or x.ndim != 1 or any(isinstance(v, bool | str) for v in values):
        bad = next(
            (i for i, v in enumerate(values) if v is not None and (
                isinstance(v, bool) or not isinstance(v, int | float))),
            0,
        )  # fmt: skip
        raise _err((*loc, bad), "must be a number (mV) or null", "number_type")
    if np.isinf(x).any():
        raise _err((*loc, int(np.flatnonzero(np.isinf(x))[0])), "must be a finite number")
    return x


def parse_chunk(body: Any, key: str | None) -> Chunk:
    """A chunk from a JSON body, or from a FHIR ``Observation``."""
    body = _object(body)
    if "resourceType" in body:
        return parse_observation(body, key)
    _known(body, {"start", "start_time", "fs_hz", "samples"})
    start = body.get("start")
    if start is not None and (isinstance(start, bool) or not isinstance(start, int)
                              or not 0 <= start < 2**53):  # fmt: skip
        raise _err(("start",), "must be a sample index (an integer >= 0)", "int_type")
    t0 = body.get("start_time")
    if start is not None and t0 is not None:
        raise _err(("start_time",), "give start or start_time, not both")
    fs = body.get("fs_hz")
    return Chunk(
        samples=_json_samples(body.get("samples")),
        start=start,
        start_time=None if t0 is None else parse_time(t0, ("start_time",)),
        fs_hz=None if fs is None else _number(fs, ("fs_hz",), positive=True),
        key=key,
    )


def parse_observation(obs: dict[str, Any], key: str | None, lead: str | None = None) -> Chunk:
    """A chunk from a FHIR R4 ``Observation`` with ``valueSampledData`` (module doc)."""
    if obs.get("resourceType") != "Observation":
        raise _err(
            ("resourceType",),
            "a FHIR chunk is one Observation with valueSampledData (send one per request)",
            "resource_type",
        )
    status = obs.get("status")
    if status not in ACCEPTED_STATUS:
        raise _err(("status",), f"must be one of {', '.join(ACCEPTED_STATUS)}")
    obs_id = obs.get("id")
    if obs_id is not None:
        if not isinstance(obs_id, str) or not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", obs_id):
            raise _err(("id",), "must be a FHIR id (1-64 letters, digits, '-' or '.')")
        if key is None:
            key = f"obs:{obs_id}"
    if key is not None and not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, key):
        raise RequestError.at(("header", "Idempotency-Key"), "is malformed")
    when, where = _effective(obs)
    sampled, loc = _sampled_data(obs, lead)
    samples, fs = sampled_values(sampled, loc)
    return Chunk(samples=samples, start_time=parse_time(when, where), fs_hz=fs, key=key)


def _effective(obs: dict[str, Any]) -> tuple[Any, tuple]:
    for name in ("effectiveDateTime", "effectiveInstant"):
        if name in obs:
            return obs[name], (name,)
    period = obs.get("effectivePeriod")
    if isinstance(period, dict) and "start" in period:
        return period["start"], ("effectivePeriod", "start")
    raise _err(
        ("effectiveDateTime",),
        "the time of the first sample is required (effectiveDateTime, effectiveInstant or "
        "effectivePeriod.start)",
        "missing",
    )


def _lead_matches(component: dict[str, Any], lead: str) -> bool:
    code = component.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    names = {str(code.get("text"))} if isinstance(code, dict) else set()
    for c in codings if isinstance(codings, list) else []:
        if isinstance(c, dict):
            names |= {str(c.get("code")), str(c.get("display"))}
    return lead in names


def _sampled_data(obs: dict[str, Any], lead: str | None) -> tuple[dict[str, Any], tuple]:
    if "valueSampledData" in obs:
        value = obs["valueSampledData"]
        if not isinstance(value, dict):
            raise _err(("valueSampledData",), "must be a SampledData object", "dict_type")
        return value, ("valueSampledData",)
    components = obs.get("component")
    found = []
    if isinstance(components, list):
        found = [
            (i, c) for i, c in enumerate(components)
            if isinstance(c, dict) and isinstance(c.get("valueSampledData"), dict)
        ]  # fmt: skip
    if len(found) > 1 and lead is not None:
        found = [(i, c) for i, c in found if _lead_matches(c, lead)] or found[:0]
    if len(found) != 1:
        what = "no component" if not found else "several components"
        raise _err(
            ("valueSampledData",),
            f"needs samples: valueSampledData, or one component with valueSampledData "
            f"(for several leads, the one coded {lead or 'with the bundle lead'}); found {what}",
        )
    i, c = found[0]
    return c["valueSampledData"], ("component", i, "valueSampledData")


def sampled_values(sampled: dict[str, Any], loc: tuple) -> tuple[np.ndarray, float]:
    """(values in mV, sampling rate) of a FHIR R4 SampledData."""
    origin = sampled.get("origin")
    if not isinstance(origin, dict) or "value" not in origin:
        raise _err((*loc, "origin", "value"), "is required (the value of data 0)", "missing")
    base = _number(origin["value"], (*loc, "origin", "value"))
    unit = origin.get("code", origin.get("unit", "mV"))
    if unit not in UNITS_TO_MV:
        raise _err((*loc, "origin", "code"), f"unit must be one of {sorted(UNITS_TO_MV)} (UCUM)")
    if "period" not in sampled:
        raise _err((*loc, "period"), "is required (milliseconds between samples)", "missing")
    period = _number(sampled["period"], (*loc, "period"), positive=True)
    factor = 1.0 if sampled.get("factor") is None else _number(sampled["factor"], (*loc, "factor"))
    dims = sampled.get("dimensions")
    if dims != 1 or isinstance(dims, bool):
        raise _err((*loc, "dimensions"), "must be 1 (one lead per SampledData)")
    limits = {}
    for name, token in (("lowerLimit", "L"), ("upperLimit", "U")):
        limits[token] = (
            np.nan if sampled.get(name) is None else _number(sampled[name], (*loc, name))
        )
    data = sampled.get("data")
    if not isinstance(data, str) or not data.strip():
        raise _err((*loc, "data"), "must be a string of samples separated by spaces")
    tokens = data.split()
    if len(tokens) > MAX_SAMPLES:
        raise _err((*loc, "data"), f"holds more than {MAX_SAMPLES} samples")
    values = np.zeros(len(tokens))
    at_limit: dict[str, list[int]] = {"L": [], "U": []}
    for i, t in enumerate(tokens):
        if t == "E":
            values[i] = np.nan
        elif t in at_limit:
            at_limit[t].append(i)
        elif _DECIMAL.fullmatch(t):
            values[i] = float(t)
        else:
            raise _err((*loc, "data"), f"sample {i} is not a decimal, E, L or U")
    x = base + factor * values
    for t, where in at_limit.items():
        x[where] = limits[t]  # limits are physical values, like origin
    x *= UNITS_TO_MV[unit]
    if np.isinf(x).any():
        raise _err((*loc, "data"), "a sample is out of range")
    return x, 1000.0 / period
