"""The per-update caps of a streaming update, one set for both body forms.

The event-table form (``{"observations": [...]}``) is bounded by its pydantic model:
at most :data:`~medseq.serving.schemas.MAX_UPDATE` rows, times within
:data:`~medseq.serving.schemas.MAX_TIME_HOURS` of admission, finite values. The FHIR form
was bounded only by the body size. :func:`check_update` applies the same caps to the
:class:`~medseq.serving.inputs.History` that either form becomes, so neither form accepts
what the other refuses. (The FHIR form's entry count is also capped before parsing, in
:mod:`medseq.serving.fhir_bounds`.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from medseq.serving.inputs import History
from medseq.serving.requests import RequestError
from medseq.serving.schemas import MAX_TIME_HOURS, MAX_UPDATE


def check_update(history: History, prefix: Sequence[Any]) -> None:
    """Refuse (422) an update outside the caps; ``prefix`` locates its observations
    (``("body", "entry")`` or ``("body", "observations")``).

    Raises
    ------
    RequestError
        Too many observations, a time beyond a year of admission, or a value not finite.
    """
    if len(history.observations) > MAX_UPDATE:
        raise RequestError.at(
            tuple(prefix)[:2],
            f"more than {MAX_UPDATE} observations in one update (the cap of both forms)",
            "too_long",
        )
    fhir = tuple(prefix)[-1:] == ("entry",)
    time_loc = ("resource", "effectiveDateTime") if fhir else ("time",)
    value_loc = ("resource", "valueQuantity", "value") if fhir else ("value",)
    errors = []
    for obs, origin in zip(history.observations, history.origins, strict=True):
        if not abs(obs.time) <= MAX_TIME_HOURS:
            msg = f"is more than {MAX_TIME_HOURS:.0f} hours from admission"
            errors.append({"loc": [*prefix, origin, *time_loc], "msg": msg, "type": "time_range"})
        elif not math.isfinite(obs.value):
            msg = "value must be a finite number"
            errors.append(
                {"loc": [*prefix, origin, *value_loc], "msg": msg, "type": "finite_number"}
            )
    if errors:
        raise RequestError(errors)
