"""Validated event-table request bodies -> patient histories in model variables and hours.

Both input forms of an event-table dataset (the event-table JSON of
:class:`~medseq.serving.schemas.EventIn` rows and FHIR R4 Bundles,
:mod:`medseq.serving.fhir`) end as :class:`History` objects: observations of model
variables, in the variable's unit, at hours since admission, plus the descriptors and the
list of what was left out and why. The dataset's code table
(:class:`~medseq.serving.codes.CodeTable`, from its spec) says which codes and units name
which variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from medseq.serving.codes import CodeTable, Mapped, RefusedCode
from medseq.serving.engine import Observation
from medseq.serving.jsonbody import parse_body
from medseq.serving.requests import RequestError as InputError
from medseq.serving.requests import validate
from medseq.serving.schemas import EventIn

__all__ = ["History", "InputError", "history_from_events", "parse_json", "validate"]


@dataclass
class History:
    """One patient's usable observations and what was left out."""

    patient_id: str
    observations: list[Observation] = field(default_factory=list)
    origins: list[int] = field(default_factory=list)  # request index of each observation
    static: dict[str, float] = field(default_factory=dict)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    admission_time: str | None = None
    #: FHIR ``Observation.id`` of each observation (None: none); empty for the JSON form.
    observation_ids: list[str | None] = field(default_factory=list)
    #: The update's idempotency key from the body (``update_id``), if any.
    update_id: str | None = None


def parse_json(body: bytes) -> Any:
    """JSON of a request body; invalid or too deeply nested JSON is a 422
    (:func:`medseq.serving.jsonbody.parse_body`)."""
    return parse_body(body)


def history_from_events(
    patient_id: str,
    events: list[EventIn],
    static: Mapping[str, float] | None,
    table: CodeTable,
    loc: tuple[Any, ...] = ("body", "observations"),
) -> History:
    """Map event-table observations (codes, optional units) to model variables.

    A code the table refuses is a 422 at ``(*loc, i, "code")`` naming the code and why.
    """
    history = History(patient_id, static=dict(static or {}))
    for i, event in enumerate(events):
        try:
            mapped = table.map(None, event.code, event.value, event.unit)
        except RefusedCode as err:
            raise InputError.at((*loc, i, "code"), str(err), "refused_code") from None
        if isinstance(mapped, Mapped) and not mapped.static:
            history.observations.append(Observation(mapped.variable, event.time, mapped.value))
            history.origins.append(i)
        elif isinstance(mapped, Mapped):
            history.static.setdefault(mapped.variable, mapped.value)
        else:
            history.skipped.append({"index": i, "code": event.code, "reason": mapped})
    return history
