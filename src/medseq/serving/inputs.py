"""Validated request bodies -> patient histories in model variables and hours.

Both input forms (the event-table JSON of :mod:`medseq.serving.schemas` and FHIR R4
Bundles, :mod:`medseq.serving.fhir`) end as :class:`History` objects: observations of
model variables, in the variable's unit, at hours since admission, plus the descriptors
and the list of what was left out and why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pydantic

from medseq.serving.codes import CodeTable, Mapped
from medseq.serving.engine import Observation
from medseq.serving.schemas import EventIn, StaticIn


class InputError(ValueError):
    """Bad input for a 422 answer: ``errors`` are pydantic-style ``{loc, msg, type}``."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors

    @classmethod
    def at(cls, loc: tuple, msg: str, kind: str = "value_error") -> InputError:
        return cls([{"loc": list(loc), "msg": msg, "type": kind}])

    @classmethod
    def from_validation(cls, err: pydantic.ValidationError, prefix: tuple = ("body",)):
        """Keep ``loc``, ``msg`` and ``type``; drop the echoed input (no values in answers)."""
        return cls(
            [
                {"loc": [*prefix, *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in err.errors(include_url=False)
            ]
        )


@dataclass
class History:
    """One patient's usable observations and what was left out."""

    patient_id: str
    observations: list[Observation] = field(default_factory=list)
    origins: list[int] = field(default_factory=list)  # request index of each observation
    static: dict[str, float] = field(default_factory=dict)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    admission_time: str | None = None


def parse_json(body: bytes) -> Any:
    """JSON of a request body; a syntax error is a 422 naming line and column."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        where = (
            f" at line {err.lineno} column {err.colno}"
            if isinstance(err, json.JSONDecodeError)
            else ""
        )
        raise InputError.at(("body",), f"invalid JSON{where}", "json_invalid") from None


def validate(model: type[pydantic.BaseModel], obj: Any) -> Any:
    """``model.model_validate(obj)`` with errors turned into :class:`InputError`."""
    try:
        return model.model_validate(obj)
    except pydantic.ValidationError as err:
        raise InputError.from_validation(err) from None


def history_from_events(
    patient_id: str, events: list[EventIn], static: StaticIn | None, table: CodeTable
) -> History:
    """Map event-table observations (codes, optional units) to model variables."""
    history = History(patient_id, static=static.given() if static else {})
    for i, event in enumerate(events):
        mapped = table.map(None, event.code, event.value, event.unit)
        if isinstance(mapped, Mapped) and not mapped.static:
            history.observations.append(Observation(mapped.variable, event.time, mapped.value))
            history.origins.append(i)
        elif isinstance(mapped, Mapped):
            history.static.setdefault(mapped.variable, mapped.value)
        else:
            history.skipped.append({"index": i, "code": event.code, "reason": mapped})
    return history
