"""Patient histories: the event table of hospital visits shared by the MIMIC and MEDS readers.

A history is the canonical long event table (:func:`medseq.schema.validate_events`) whose
codes are namespaced strings, plus the visits those events fall into. Both readers
(:mod:`medseq.sources.mimic3`, :mod:`medseq.sources.meds`) write the same codes, so a MIMIC
folder and its MEDS export give the same :class:`HistorySet`:

``ADMISSION/<admission type>``
    at the admission time: opens a visit.
``DISCHARGE/<discharge location>``
    at the discharge time: closes the visit opened last.
``ICD9DX/<code>``, ``ICD9PX/<code>``
    ICD-9-CM diagnoses and procedures without the dot (``ICD9DX/4019`` is 401.9), at the
    discharge time: they are coded at discharge, so they are not known earlier.
``NDC/<11 digits>`` or ``DRUG/<name>``
    a prescription, at the end of its start day (MIMIC-III start dates carry no time of
    day, so the end of the day is the earliest time the order is surely known).
``MEDS_BIRTH``, ``MEDS_DEATH``, ``GENDER/<F|M>``
    the MEDS conventions for birth and death; gender is placed at birth.

``time`` is hours since the subject's first admission (:attr:`HistorySet.origin` holds that
instant), so a subject's history starts at 0 whatever the date shifting of the source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from medseq.schema import DataError, ReadReport

ADMISSION_PREFIX = "ADMISSION/"
DISCHARGE_PREFIX = "DISCHARGE/"
BIRTH_CODE = "MEDS_BIRTH"
DEATH_CODE = "MEDS_DEATH"
VISIT_COLUMNS = ("subject_id", "visit", "start", "end")


@dataclass
class HistorySet:
    """Events of patient histories, the visits they form, and each subject's time origin.

    Attributes
    ----------
    events : DataFrame
        The canonical event table (``subject_id, time, code, value``), sorted.
    visits : DataFrame
        One row per visit: ``subject_id``, ``visit`` (0, 1, ... in time order), ``start``
        and ``end`` in hours on the events' clock.
    origin : Series
        ``datetime64`` instant of hour 0 per ``subject_id`` (the first admission).
    report : ReadReport
        What the reader skipped or repaired, counted by reason.
    """

    events: pd.DataFrame
    visits: pd.DataFrame
    origin: pd.Series
    report: ReadReport

    @property
    def subject_ids(self) -> np.ndarray:
        """Every subject with at least one visit, sorted."""
        return np.unique(self.visits["subject_id"].to_numpy(dtype=np.int64))


def visits_from_events(
    events: pd.DataFrame,
    *,
    start_prefix: str = ADMISSION_PREFIX,
    end_prefix: str = DISCHARGE_PREFIX,
    where: str = "events",
) -> pd.DataFrame:
    """Visits opened by ``start_prefix`` codes and closed by the next ``end_prefix`` code.

    Raises
    ------
    DataError
        If there is no visit at all, or a subject's admissions and discharges do not
        alternate (a visit without its discharge, a discharge before its admission).
    """
    codes = events["code"].astype(str)
    starts = events.loc[codes.str.startswith(start_prefix), ["subject_id", "time"]]
    ends = events.loc[codes.str.startswith(end_prefix), ["subject_id", "time"]]
    if starts.empty:
        raise DataError(
            f"{where}: no visit found: no code starts with {start_prefix!r}; pass the "
            "prefixes that mark admissions and discharges in this data"
        )
    starts = starts.sort_values(["subject_id", "time"], kind="stable").reset_index(drop=True)
    ends = ends.sort_values(["subject_id", "time"], kind="stable").reset_index(drop=True)
    ids = np.union1d(starts["subject_id"].unique(), ends["subject_id"].unique())
    n_start = starts.groupby("subject_id").size().reindex(ids, fill_value=0)
    n_end = ends.groupby("subject_id").size().reindex(ids, fill_value=0)
    unmatched = ids[n_start.to_numpy() != n_end.to_numpy()]
    if len(unmatched):
        sid = int(unmatched[0])
        raise DataError(
            f"{where}: subject {sid}: {int(n_start[sid])} {start_prefix!r} codes but "
            f"{int(n_end[sid])} {end_prefix!r} codes; every admission needs one discharge"
        )
    visits = pd.DataFrame(
        {
            "subject_id": starts["subject_id"].to_numpy(dtype=np.int64),
            "visit": starts.groupby("subject_id").cumcount().to_numpy(dtype=np.int64),
            "start": starts["time"].to_numpy(dtype=np.float64),
            "end": ends["time"].to_numpy(dtype=np.float64),
        }
    )
    nxt = visits.groupby("subject_id")["start"].shift(-1)
    bad = (visits["end"] < visits["start"]) | (visits["end"] > nxt)
    if bad.any():
        row = visits[bad].iloc[0]
        raise DataError(
            f"{where}: subject {int(row.subject_id)} visit {int(row.visit)}: discharge at "
            f"{row.end:.2f} h is before its admission ({row.start:.2f} h) or after the next one"
        )
    return visits


def check_history(events: pd.DataFrame, visits: pd.DataFrame, report: ReadReport) -> None:
    """Fill the report's subject and event counts."""
    report.n_subjects = int(visits["subject_id"].nunique())
    report.n_events = len(events)
