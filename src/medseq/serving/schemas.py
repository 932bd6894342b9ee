"""Request and response bodies of the REST API, with limits on every field.

Input models forbid unknown fields, take numbers only as JSON numbers (``"80"`` is refused,
so is ``NaN`` or ``Infinity``) and bound every list, so a malformed or oversized request is
answered 422 with the path of the offending field before any model code runs. The bodies of
``POST /v1/predict`` belong to each dataset (its spec's ``request`` part,
:mod:`medseq.serving.requests`); this module holds the event row they may share and the
answers, which have one shape for every dataset.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

#: Hard caps; the body-size limit of the service (``max_body_bytes``) applies first.
MAX_PATIENTS = 256
MAX_EVENTS = 20_000
MAX_UPDATE = 1_000
#: Hours since admission beyond which a time is taken as an error (a 1-year stay).
MAX_TIME_HOURS = 24.0 * 366
PATIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
#: ``Idempotency-Key`` header and ``update_id``: a UUID, a ULID or any such token.
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"

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


class Strict(BaseModel):
    """Unknown fields refused, numbers only as JSON numbers."""

    model_config = ConfigDict(extra="forbid", strict=True)


class EventIn(Strict):
    """One observation in the event-table form (``docs/architecture.md`` §1)."""

    time: Hours
    code: str = Field(min_length=1, max_length=64, description="Variable name or LOINC code.")
    value: Number
    unit: str | None = Field(default=None, max_length=32, description="UCUM; default: table's.")


class Skipped(BaseModel):
    """An input observation that was not used, and why."""

    index: int
    code: str
    reason: str


class StepPrediction(BaseModel):
    """The answer for one step of an item, from a per-step (sequence-labelling) model."""

    step: int = Field(description="The request's label of the step (an hour of a stay, "
                      "an epoch of a recording), as the dataset's body defines it.")  # fmt: skip
    probabilities: list[float] | None = Field(default=None, description="As the item's.")
    value: float | None = None
    predicted: list[str] = Field(description="As the item's, at this step.")


class UnknownCodes(BaseModel):
    """Codes of a request that reach no input column of the model (not dropped silently)."""

    n_events: int = Field(description="Input events whose code the model has no column for.")
    codes: list[str] = Field(description="The most frequent of those codes (at most 20).")


class Prediction(BaseModel):
    """The answer for one item of a request, the same shape for every dataset and task."""

    id: str = Field(description="The item's id in the request (patient, record, molecule).")
    probabilities: list[float] | None = Field(
        default=None,
        description="One per entry of class_names (binary: the positive class only); "
        "null for regression.",
    )
    value: float | None = Field(default=None, description="Regression output; else null.")
    predicted: list[str] = Field(
        description="Class names decided: binary and multilabel at the threshold, "
        "multiclass the most probable class; empty for regression."
    )
    n_events_used: int | None = Field(default=None, description="Event-table inputs only.")
    prediction_time: str | None = Field(
        default=None, description="Config tasks: the instant predicted at (ISO 8601, UTC)."
    )
    outside_cohort: list[str] | None = Field(
        default=None,
        description="Config tasks: the cohort rules the patient does not meet at the "
        "prediction time (the model was not trained on such patients).",
    )
    prediction_hour: float | None = Field(
        default=None,
        description="Config tasks: the prediction time in hours on the subject's own clock "
        "(the only one for exports with relative times).",
    )
    unknown_codes: UnknownCodes | None = Field(
        default=None, description="Event rows (MEDS, flat tables, FHIR): unknown codes."
    )
    dropped_rows: dict[str, int] | None = Field(
        default=None,
        description="Flat-table rows the mapping's on_bad_row dropped in the whole request, "
        "by field (bad_row:<field>).",
    )
    static_missing: bool | None = Field(
        default=None, description="flat_icu: the stay had no row of the static table."
    )
    skipped: list[Skipped] = Field(
        default_factory=list, description="Inputs left out, and why (never silently)."
    )
    steps: list[StepPrediction] | None = Field(
        default=None,
        description="Per-step models only (e.g. per hour, per epoch): every step "
        "answered, in order; the item's probabilities and predicted are its last step's.",
    )
    conformal: dict[str, Any] | None = Field(
        default=None,
        description="Only with ?coverage=: the conformal set (set, set_size, abstain), "
        "per-label sets, or interval at that coverage (medseq.serving.sets).",
    )


class PredictResponse(BaseModel):
    """``POST /v1/predict``: one prediction per item, in request order."""

    model_version: str
    task: str = Field(description="binary, multiclass, multilabel or regression")
    class_names: list[str] = Field(description="What each probability is the probability of.")
    threshold: float | None = Field(
        description="Decision threshold of binary and multilabel probabilities."
    )
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
