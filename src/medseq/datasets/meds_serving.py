"""A config task on MEDS data over REST: the patient's MEDS rows as JSON, in the dataset's codes.

Imported on the first request (the ``request`` part of ``meds_events``). A MEDS dataset's
codes are its own (``LOINC/8867-4``, ``ICD10CM/E11.9``, whatever its ETL wrote), so the
body carries them as they are in the dataset's ``data/*.parquet``: one object per row
with the MEDS columns ``subject_id``, ``time`` (ISO 8601, or null for a static fact) and
``code``, plus ``numeric_value`` when the row has a number; other MEDS columns
(``text_value``, ...) may be present and are not read, as the training reader does not
read them. The rows go through the training reader's own conversion
(:func:`medseq.sources.meds.events_from_frame`: hour 0 at the first ``ADMISSION/`` code,
static facts at the first timed event), then through the samples training builds
(:func:`medseq.datasets.event_tasks_serving.samples_at`), so the answer is the number a
MEDS folder holding the same rows gives to ``medseq predict``.

``prediction_time`` (optional, an ISO 8601 instant) predicts as of that instant; without
it, the task's own rule (its ``date``, or its anchor code plus ``offset_hours``) applies
to the rows. Codes the model has no input column for are not dropped silently: each
answer counts them and lists the most frequent (``unknown_codes``). A malformed row is a
422 naming the row and the field (``["body", "rows", 3, "time"]``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from medseq.serving.requests import MAX_ITEMS, Parsed, RequestContext, RequestError, validate

#: Rows in one request (a patient's MEDS history is rarely more than a few thousand);
#: the service's body-size limit applies first.
MAX_ROWS = 100_000

_MODEL: Any = None


def _body_model() -> Any:
    """The pydantic model of the body, built on first use (pydantic is a serving extra)."""
    global _MODEL
    if _MODEL is None:
        from pydantic import BaseModel, ConfigDict, Field

        class MedsRow(BaseModel):
            """One MEDS row; other MEDS columns are allowed and not read."""

            model_config = ConfigDict(extra="ignore", strict=True)
            subject_id: int
            time: str | None = None
            code: str = Field(min_length=1, max_length=512)
            numeric_value: float | None = None

        class MedsBody(BaseModel):
            """The rows of one or more patients, and the instant to predict at."""

            model_config = ConfigDict(extra="forbid")
            prediction_time: str | None = None
            rows: list[MedsRow] = Field(min_length=1, max_length=MAX_ROWS)

        _MODEL = MedsBody
    return _MODEL


def _frame(rows: list[Any]) -> pd.DataFrame:
    """The validated rows as the MEDS frame the reader builds from parquet."""
    raw = [r.time for r in rows]
    stamps = pd.to_datetime(pd.Series(raw, dtype=object), format="ISO8601", utc=True,
                            errors="coerce")  # fmt: skip
    bad = stamps.isna().to_numpy() & np.array([t is not None for t in raw], dtype=bool)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise RequestError.at(
            ("body", "rows", i, "time"),
            f"must be an ISO 8601 date-time or null ({int(bad.sum())} such rows)",
        )
    return pd.DataFrame(
        {
            "subject_id": np.array([r.subject_id for r in rows], dtype=np.int64),
            "time": stamps.dt.tz_convert(None).astype("datetime64[us]"),
            "code": [r.code for r in rows],
            "numeric_value": np.array(
                [np.nan if r.numeric_value is None else r.numeric_value for r in rows],
                dtype=np.float64,
            ),
        }
    )


def parse(body: Any, context: RequestContext) -> Parsed:
    """MEDS rows of one or more patients -> the task's samples at the prediction time."""
    from medseq.datasets.event_tasks import EventTaskData
    from medseq.datasets.event_tasks_serving import When, instant, samples_at
    from medseq.schema import ReadReport
    from medseq.sources.history import ADMISSION_PREFIX
    from medseq.sources.meds import events_from_frame

    parsed = validate(_body_model(), body)
    frame = _frame(parsed.rows)
    subjects = np.unique(frame["subject_id"].to_numpy())
    if len(subjects) > MAX_ITEMS:
        raise RequestError.at(
            ("body", "rows"), f"rows of {len(subjects)} subjects; at most {MAX_ITEMS} a request"
        )
    report = ReadReport(source="request")
    events, origin = events_from_frame(frame, ADMISSION_PREFIX, report, where="request rows")
    timeless = np.setdiff1d(subjects, origin.index.to_numpy())
    if timeless.size:
        raise RequestError.at(
            ("body", "rows"),
            f"every row of subject {int(timeless[0])} has a null time: a subject needs at "
            "least one timed row (its clock starts there)",
        )
    stamp = instant(parsed.prediction_time, ("body", "prediction_time"), context)
    when = When(stamp=stamp, loc=("body", "prediction_time"), rows_loc=("body", "rows"))
    return samples_at(EventTaskData(events=events, origin=origin, report=report), context, when)


#: The example body of the OpenAPI page: one patient's MEDS rows, predicted as of an instant.
EXAMPLE: dict[str, Any] = {
    "prediction_time": "2016-01-01T00:00:00Z",
    "rows": [
        {"subject_id": 1, "time": "1960-04-02T00:00:00", "code": "MEDS_BIRTH"},
        {"subject_id": 1, "time": None, "code": "GENDER/F"},
        {"subject_id": 1, "time": "2015-03-01T09:00:00", "code": "ENCOUNTER/AMB"},
        {"subject_id": 1, "time": "2015-03-01T09:10:00",
         "code": "http://loinc.org|8867-4", "numeric_value": 82.0},
    ],
}  # fmt: skip
