"""Flat-table ICU stays streamed one observation at a time: the ``streaming`` part of the
``flat_icu`` spec.

A ``flat_icu`` bundle holds the same fitted ICU grid featurizer as a PhysioNet 2012 one
(:class:`~medseq.features.icu.featurizer.ICUFeaturizer`, fitted on the rows the mapping
file read), so its stays advance through the same incremental featurizer
(:class:`~medseq.features.icu.incremental.StreamFeaturizer`) and the same engine: the risk
after the last observation of a stay equals ``medseq predict`` over the whole stay.

``POST /v1/patients/{id}/observations`` takes the rows of the flat events table, as the
mapping file named them (its ``code`` column's values are the featurizer's variables)::

    {"observations": [{"time": 0.5, "code": "HR", "value": 88}],
     "static": {"Age": 54, "ICUType": 4}, "update_id": "..."}

``time`` is hours since admission (the mapping's relative clock), ``static`` the columns of
the mapping's ``[static]`` table. A code the featurizer does not know is listed in the
answer's ``skipped`` (``unknown_code``), as the batch transform leaves it out; a
descriptor it does not know is a 422 naming it. There is no unit field: the mapping's
``units`` table converted the training rows, and the service has no code table to convert
a stream's values, so it takes them in the training units. For the same reason a FHIR
Bundle is refused here (422 naming the body): FHIR codes need a code table (LOINC -> the
export's names) that a hospital's own export does not carry.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from medseq.serving.inputs import History, InputError
from medseq.serving.requests import RequestContext, is_fhir_bundle, validate
from medseq.serving.schemas import IDEMPOTENCY_KEY_PATTERN, MAX_UPDATE, Hours, Number, Strict

#: How many descriptors one update may set (the static table has a handful of columns).
MAX_STATIC = 64
StaticName = Annotated[str, Field(min_length=1, max_length=64)]


class FlatEventIn(Strict):
    """One row of the flat events table: hours since admission, variable, value."""

    time: Hours
    code: str = Field(min_length=1, max_length=64, description="The export's variable name.")
    value: Number


class FlatObservationsIn(Strict):
    """``POST /v1/patients/{id}/observations`` of a ``flat_icu`` bundle (module doc)."""

    observations: list[FlatEventIn] = Field(default_factory=list, max_length=MAX_UPDATE)
    static: dict[StaticName, Number] | None = Field(default=None, max_length=MAX_STATIC)
    update_id: str | None = Field(
        default=None, pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Idempotency key: an update is applied once per key (as the "
        "Idempotency-Key header).",
    )  # fmt: skip


def stream_features(featurizer: Any) -> Any:
    """The incremental form of the bundled ICU grid featurizer (the one PhysioNet 2012
    streams through): what the streaming engine advances a stay with."""
    from medseq.features.icu.incremental import StreamFeaturizer

    return StreamFeaturizer(featurizer)


def open_service(bundle: Any, version: str, store: Any, alert: Any, **options: Any) -> Any:
    """The streaming service of a ``flat_icu`` bundle (a
    :class:`~medseq.serving.service.StreamService`; ``options`` are passed on)."""
    from medseq.serving.service import StreamService

    return StreamService(bundle, version, store, alert, **options)


def observations(
    obj: Any, patient_id: str, admission: str | None, context: RequestContext
) -> tuple[History, tuple[str, ...]]:
    """An update body as a history, and the path prefix of its observations."""
    from medseq.serving.engine import Observation

    if is_fhir_bundle(obj):
        raise InputError.at(
            ("body",),
            'a flat_icu bundle takes the flat events table\'s rows ({"observations": '
            '[{"time", "code", "value"}]}), not a FHIR Bundle: it has no code table '
            "mapping FHIR codes to the export's variable names",
        )
    body = validate(FlatObservationsIn, obj)
    history = History(patient_id, static={k: float(v) for k, v in (body.static or {}).items()})
    for i, row in enumerate(body.observations):
        history.observations.append(Observation(row.code, row.time, row.value))
        history.origins.append(i)
    history.update_id = body.update_id
    return history, ("body", "observations")


def describe(featurizer: Any) -> dict[str, Any]:
    """Inputs of the model card: the grid's variables and the static table's columns."""
    return {
        "variables": list(featurizer.feature_names_),
        "static_columns": list(featurizer.static_encoder_.columns),
    }
