"""Vectorised second half of the FHIR reader: raw rows -> resolved, timed, sorted tables.

Times and references repeat a lot (every Observation of one visit shares its time and its
patient), so each distinct string is parsed once (``pd.factorize``) and mapped back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from medseq.schema import DataError, OnBad, ReadReport, validate_events
from medseq.sources._fhir_resources import ENCOUNTER_END_PREFIX, ENCOUNTER_PREFIX
from medseq.sources.history import BIRTH_CODE, DEATH_CODE
from medseq.sources.meds import origins

if TYPE_CHECKING:
    from medseq.sources.fhir_r4 import _Collector

COLUMNS = ["ref", "when", "code", "value", "unit", "doc", "entry", "kind"]
GENDER_CODES = {"male": "M", "female": "F", "other": "O", "unknown": "U"}
HOUR = pd.Timedelta(hours=1)
ONE_DAY = pd.Timedelta(days=1)
DATE_LENGTH = len("2019-05-01")


def patient_rows(patients: pd.DataFrame) -> pd.DataFrame:
    """``MEDS_BIRTH`` and ``GENDER/<x>`` at the birth date, ``MEDS_DEATH`` at death."""
    born = patients[patients["birth"].notna()]
    # a birth date is a date, not a fact learnt at the end of that day: midnight UTC.
    birth = born["birth"].astype(str)
    birth = birth.where(birth.str.len() != DATE_LENGTH, birth + "T00:00:00+00:00")
    gender = born["gender"].map(GENDER_CODES).fillna("U")
    parts = [
        (born, birth, pd.Series(BIRTH_CODE, index=born.index)),
        (born, birth, "GENDER/" + gender),
    ]
    dead = patients[patients["deceased"].notna()]
    parts.append((dead, dead["deceased"], pd.Series(DEATH_CODE, index=dead.index)))
    frames = [
        pd.DataFrame(
            {
                "ref": who["patient_id"],
                "when": when,
                "code": code,
                "value": np.nan,
                "unit": None,
                "doc": who["doc"],
                "entry": who["entry"],
                "kind": "Patient",
            }
        )
        for who, when, code in parts
    ]
    return pd.concat(frames, ignore_index=True)


def resolve(
    state: _Collector, patients: pd.DataFrame, report: ReadReport, on_bad: OnBad
) -> pd.DataFrame:
    """Raw rows -> ``subject_id``, ``time`` (datetime64[us], UTC) and the rest, bad rows out."""
    raw = pd.DataFrame.from_records(state.rows.rows, columns=COLUMNS)
    frame = pd.concat([raw, patient_rows(patients)], ignore_index=True)
    ids, uniques = pd.factorize(frame["ref"])
    keys = [state.aliases.get(k, k) for k in (ref_key(str(u)) for u in uniques)]
    by_patient = dict(zip(patients["patient_id"], patients["subject_id"], strict=True))
    subject = np.array([by_patient.get(k, -1) for k in keys], dtype=np.int64)[ids]
    frame["subject_id"] = subject
    _drop_bad(state, frame, subject < 0, "unknown_subject", "references no Patient in the export")
    frame = frame[subject >= 0]
    when, date_only, bad = parse_times(frame["when"])
    report.add("date_only_time", int(date_only.sum()))
    _drop_bad(state, frame, bad, "bad_time", "time is not an ISO 8601 date-time")
    frame = frame.assign(time=when)[~bad]
    return frame.drop(columns=["ref", "when"]).reset_index(drop=True)


def drop_ends_before_starts(frame: pd.DataFrame, report: ReadReport) -> pd.DataFrame:
    """An Encounter whose ``period.end`` is before its start keeps its start, loses its end.

    Counted as ``encounter_end_before_start``: the visit's length is unknown, not negative.
    """
    code = frame["code"].astype(str)
    is_end = code.str.startswith(ENCOUNTER_END_PREFIX).to_numpy()
    if not is_end.any():
        return frame
    key = ["doc", "entry"]
    starts = frame.loc[code.str.startswith(ENCOUNTER_PREFIX).to_numpy(), [*key, "time"]]
    ends = frame.loc[is_end, [*key, "time"]].reset_index()
    pairs = ends.merge(starts, on=key, suffixes=("", "_start"))
    early = pairs.loc[pairs["time"] < pairs["time_start"], "index"]
    report.add("encounter_end_before_start", len(early))
    return frame.drop(index=early)


def _drop_bad(
    state: _Collector, frame: pd.DataFrame, mask: np.ndarray, reason: str, detail: str
) -> None:
    """Raise for the first flagged row (``on_bad_entry="raise"``) or count them by type."""
    if not mask.any():
        return
    first = frame[mask].iloc[0]
    state.rows.doc, state.rows.entry = int(first["doc"]), int(first["entry"])
    if state.on_bad == "raise":
        state.flag(first["kind"], reason, f"{detail} (got {first['ref']!r}, {first['when']!r})")
    for kind, n in frame.loc[mask, "kind"].value_counts().items():
        state.bad[str(kind)] += int(n)
        state.report.add(f"bad_entry:{kind}:{reason}", int(n))


def parse_times(strings: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ISO 8601 strings -> datetime64[us] UTC (naive), date-only flags and bad flags.

    A date without a time of day moves to the end of that day (the earliest instant the
    fact is surely known); a year or year-month alone is too vague and is bad.
    """
    ids, uniques = pd.factorize(strings)  # a missing time gets id -1
    text = pd.Series(uniques, dtype=object)
    length = text.str.len().to_numpy()
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    date_only = np.append(length == DATE_LENGTH, False)
    parsed = parsed.where(length != DATE_LENGTH, parsed + ONE_DAY).where(length >= DATE_LENGTH)
    when = parsed.dt.tz_convert(None).astype("datetime64[us]").to_numpy()
    when = np.append(when, np.datetime64("NaT", "us"))  # index -1: the missing ones
    out = when[ids]
    return out, date_only[ids], np.isnat(out)


def birth_times(birth: pd.Series) -> np.ndarray:
    """``Patient.birthDate`` (a date, no time) as midnight UTC; NaT when absent or bad."""
    parsed = pd.to_datetime(birth, utc=True, format="ISO8601", errors="coerce")
    return parsed.dt.tz_convert(None).astype("datetime64[us]").to_numpy()


def to_hours(frame: pd.DataFrame, start_prefix: str, where: str) -> tuple[pd.DataFrame, pd.Series]:
    """Absolute times -> hours since each subject's first ``start_prefix`` event, sorted."""
    origin = origins(frame[["subject_id", "time", "code"]], start_prefix)
    hour0 = origin.reindex(frame["subject_id"]).to_numpy()
    events = pd.DataFrame(
        {
            "subject_id": frame["subject_id"].to_numpy(),
            "time": (frame["time"].to_numpy() - hour0) / np.timedelta64(1, "h"),
            "code": frame["code"].to_numpy(dtype=object),
            "value": frame["value"].to_numpy(dtype=np.float64),
        }
    )
    events = events.sort_values(["subject_id", "time", "code", "value"], kind="stable")
    return validate_events(events, where=where), origin


def static_table(
    patients: pd.DataFrame, origin: pd.Series, reference_time: str | pd.Timestamp | None
) -> pd.DataFrame:
    """One row per Patient: id, sex, birth date, death time and age at the reference time."""
    birth = birth_times(patients["birth"])
    death = pd.to_datetime(patients["deceased"], utc=True, format="ISO8601", errors="coerce")
    if reference_time is None:
        ref = origin.reindex(patients["subject_id"]).to_numpy()
    else:
        stamp = pd.Timestamp(reference_time)
        stamp = stamp.tz_convert(None) if stamp.tzinfo is not None else stamp
        ref = np.full(len(patients), stamp.to_datetime64())
    age = (ref - birth) / np.timedelta64(1, "D") / 365.25
    return pd.DataFrame(
        {
            "patient_id": patients["patient_id"].to_numpy(dtype=object),
            "sex": patients["gender"].to_numpy(dtype=object),
            "birth_date": birth,
            "death_time": death.dt.tz_convert(None).astype("datetime64[us]").to_numpy(),
            "age_years": age.astype(np.float64),
        },
        index=pd.Index(patients["subject_id"].to_numpy(dtype=np.int64), name="subject_id"),
    ).sort_index()


def ref_key(reference: str) -> str:
    """``urn:uuid:<id>``, ``Patient/<id>`` or ``https://.../Patient/<id>`` -> ``<id>``."""
    if reference.startswith("urn:uuid:"):
        return reference[9:]
    return reference.rsplit("/", 1)[-1]


def check_nonempty(frame: pd.DataFrame, where: str) -> None:
    """An export whose every entry was dropped is an error, not an empty dataset."""
    if frame.empty:
        raise DataError(f"{where}: no event could be read; see the counts in the report")
