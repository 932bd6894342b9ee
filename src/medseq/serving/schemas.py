"""Request and response bodies of the REST API, with limits on every field.

Input models forbid unknown fields, take numbers only as JSON numbers (``"80"`` is refused,
so is ``NaN`` or ``Infinity``) and bound every list, so a malformed or oversized request is
answered 422 with the path of the offending field before any model code runs.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

#: Hard caps; the body-size limit of the service (``max_body_bytes``) applies first.
MAX_PATIENTS = 256
MAX_EVENTS = 20_000
MAX_UPDATE = 1_000
#: Hours since admission beyond which a time is taken as an error (a 1-year stay).
MAX_TIME_HOURS = 24.0 * 366
PATIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Hours = Annotated[
    float,
    Field(
        strict=True,
        allow_inf_nan=False,
        ge=-MAX_TIME_HOURS,
        le=MAX_TIME_HOURS,
        description="Hours since ICU admission; later than a year is refused as far-future.",
    ),
]
PatientId = Annotated[str, Field(pattern=PATIENT_ID_PATTERN, description="No spaces; ≤ 64.")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class EventIn(_Strict):
    """One observation in the event-table form (``docs/architecture.md`` §1)."""

    time: Hours
    code: str = Field(min_length=1, max_length=64, description="Variable name or LOINC code.")
    value: Number
    unit: str | None = Field(default=None, max_length=32, description="UCUM; default: table's.")


class StaticIn(_Strict):
    """Descriptors of the stay, in the PhysioNet 2012 units; all optional."""

    Age: Number | None = Field(default=None, ge=0, le=130, description="years")
    Gender: Number | None = Field(default=None, ge=0, le=1, description="0 female, 1 male")
    Height: Number | None = Field(default=None, ge=50, le=280, description="cm")
    ICUType: Number | None = Field(default=None, ge=1, le=4, description="1..4")
    Weight: Number | None = Field(default=None, ge=1, le=700, description="kg, at admission")

    def given(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.model_dump().items() if v is not None}


class PatientHistoryIn(_Strict):
    """One patient's history for batch prediction."""

    patient_id: PatientId
    static: StaticIn | None = None
    events: list[EventIn] = Field(default_factory=list, max_length=MAX_EVENTS)


class PredictRequest(_Strict):
    """``POST /v1/predict`` in the event-table form (the other form is a FHIR Bundle)."""

    patients: list[PatientHistoryIn] = Field(min_length=1, max_length=MAX_PATIENTS)


class ObservationsIn(_Strict):
    """``POST /v1/patients/{id}/observations`` in the event-table form."""

    observations: list[EventIn] = Field(default_factory=list, max_length=MAX_UPDATE)
    static: StaticIn | None = None


class Skipped(BaseModel):
    """An input observation that was not used, and why."""

    index: int
    code: str
    reason: str


class Prediction(BaseModel):
    patient_id: str
    risk: float | None = None
    prediction: float | None = Field(default=None, description="regression bundles")
    decision: bool | None = None
    n_events_used: int
    skipped: list[Skipped]


class PredictResponse(BaseModel):
    model_version: str
    threshold: float | None
    predictions: list[Prediction]


class StreamState(BaseModel):
    """A patient's current streaming state."""

    patient_id: str
    model_version: str
    risk: float
    decision: bool | None
    alert: bool
    n_observations: int
    hours_covered: int = Field(description="Bins (hours) up to the latest observation.")
    admission_time: str | None = None


class StreamUpdate(StreamState):
    n_applied: int
    skipped: list[Skipped]
