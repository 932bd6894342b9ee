"""Bounds a FHIR Bundle must meet before ``fhir.resources`` validates it.

``fhir.resources`` validates whatever it is given, at a cost that grows with the body, and
some shapes made it fail with a ``KeyError`` (a made-up ``resourceType``) or read a number
as epoch seconds (``"effectiveDateTime": 1704103200``). :func:`check_bundle` looks at the
raw JSON first, cheaply, and refuses with a 422 naming the field (never echoing its value):

* ``Bundle.type`` missing or not one of :data:`BUNDLE_TYPES` (a Bundle of another kind,
  e.g. ``history`` or ``transaction-response``, does not hold observations to score);
* more entries than the route's cap (:data:`MAX_FHIR_ENTRIES` for ``/v1/predict``,
  :data:`~medseq.serving.schemas.MAX_UPDATE` for a streaming update, the cap of the
  event-table form);
* an entry's ``resourceType`` that is not a FHIR R4 resource type;
* a date or time that the service reads (``Observation.effectiveDateTime``,
  ``effectivePeriod``, ``Encounter.period``, ``Patient.birthDate``) given as anything but
  a string (FHIR dates and dateTimes are strings).

Nesting (``extension`` inside ``extension``) is bounded by the JSON depth limit
(:mod:`medseq.serving.jsonbody`), checked before this.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from medseq.serving.requests import RequestError

#: Bundle types whose entries are resources to read (FHIR R4 ``bundle-type`` value set).
BUNDLE_TYPES = ("collection", "batch", "transaction", "searchset")
#: Entries of one Bundle posted to ``/v1/predict`` (``max_body_bytes`` applies first).
MAX_FHIR_ENTRIES = 20_000
_NAME = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
#: Per resource type: the date/time fields the service reads, as paths in the resource.
_TIME_FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "Observation": (("effectiveDateTime",), ("effectivePeriod", "start"), ("issued",)),
    "Encounter": (("period", "start"), ("period", "end")),
    "Patient": (("birthDate",),),
}


@functools.cache
def is_resource_type(name: str) -> bool:
    """Whether ``name`` is a FHIR R4 (R4B) resource type such as ``Observation``."""
    if not _NAME.match(name):
        return False
    from fhir.resources.R4B import fhirtypes

    kind = getattr(fhirtypes, f"{name}Type", None)
    if kind is None:
        return False
    from fhir.resources.R4B.resource import Resource

    try:
        return issubclass(kind.get_model_klass(), Resource)
    except (AttributeError, ImportError, TypeError, ValueError):
        return False


def _error(loc: list[Any], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind}


def _type_errors(obj: dict[str, Any]) -> list[dict[str, Any]]:
    kind = obj.get("type")
    if isinstance(kind, str) and kind in BUNDLE_TYPES:
        return []
    what = "is required" if kind is None else "is not a Bundle type this service reads"
    msg = f"{what}; expected one of {', '.join(BUNDLE_TYPES)}"
    return [_error(["body", "type"], msg, "bundle_type")]


def _time_errors(resource: dict[str, Any], kind: str, loc: list[Any]) -> list[dict[str, Any]]:
    errors = []
    for path in _TIME_FIELDS.get(kind, ()):
        value: Any = resource
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None and not isinstance(value, str):
            errors.append(
                _error(
                    [*loc, *path],
                    "must be a FHIR date/dateTime string (e.g. 2024-03-01T08:00:00+00:00), "
                    "not a number or an object",
                    "datetime_type",
                )
            )
    return errors


def _entry_errors(index: int, entry: Any) -> list[dict[str, Any]]:
    resource = entry.get("resource") if isinstance(entry, dict) else None
    if not isinstance(resource, dict):
        return []  # fhir.resources names the missing or malformed resource
    loc: list[Any] = ["body", "entry", index, "resource"]
    kind = resource.get("resourceType")
    if not isinstance(kind, str) or not is_resource_type(kind):
        return [_error([*loc, "resourceType"], "is not a FHIR R4 resource type", "resource_type")]
    return _time_errors(resource, kind, loc)


def check_bundle(obj: dict[str, Any], max_entries: int = MAX_FHIR_ENTRIES) -> None:
    """Refuse a Bundle outside the bounds of the module doc.

    Raises
    ------
    RequestError
        Every error found (the answer keeps the first 50).
    """
    errors = _type_errors(obj)
    entries = obj.get("entry")
    if isinstance(entries, list):
        if len(entries) > max_entries:
            msg = f"more than {max_entries} entries (the cap of one request on this route)"
            errors.append(_error(["body", "entry"], msg, "too_long"))
        else:
            for i, entry in enumerate(entries):
                errors += _entry_errors(i, entry)
    elif entries is not None:
        errors.append(_error(["body", "entry"], "must be a list of entries", "list_type"))
    if errors:
        raise RequestError(errors)
