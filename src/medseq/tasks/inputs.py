"""What a config task's model may see: events strictly before the prediction time.

Leakage is ruled out by construction, not by care in each featurizer: the event table
handed to every featurizer (and to the count baseline) is cut here to each sample's
observation window ``[start, cutoff)``, so an event at or after the prediction time
cannot reach a model, whatever the featurizer does. ``tests/unit/tasks`` checks it by
changing every later event and comparing the featurised inputs byte for byte.

Each sample's past becomes its own history keyed by the sample id (a subject predicted at
every encounter has one history per encounter, each cut at its own prediction time).

Static facts enter as two tokens placed at the sample's latest input event, so they sit in
its most recent visit (never cut by ``max_visits``): ``GENDER/<x>`` and
``AGE_YEARS/<band>`` (age at the prediction time in 10-year bands, ``AGE_YEARS/unknown``).

Visits for the visit models (Doctor AI, RETAIN) are ``visit_hours`` bins counted back from
the prediction time (the last visit is ``[cutoff - visit_hours, cutoff)``), so any event
table, with or without encounters, forms visits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medseq.schema import ReadReport
from medseq.sources.history import HistorySet
from medseq.tasks.cohort import STATIC_CODES, per_sample
from medseq.tasks.spec import match_codes

AGE_PREFIX = "AGE_YEARS/"
VISIT_HOURS = 24.0


def age_token(age_years: float) -> str:
    """``AGE_YEARS/60-69`` for 63.2 years; ``AGE_YEARS/unknown`` for NaN."""
    if not np.isfinite(age_years):
        return f"{AGE_PREFIX}unknown"
    low = int(age_years // 10) * 10
    return f"{AGE_PREFIX}{low}-{low + 9}"


def input_events(events: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Each sample's events in ``[start, cutoff)``, plus its sex and age tokens.

    ``samples`` is indexed by ``sample_id`` (``subject_id, cutoff, start, age_years, sex``);
    a subject may have several samples. Returns ``subject_id, time, code, value`` where
    ``subject_id`` holds the **sample id**: each sample's past is its own history (equal to
    the subject id when each subject has one sample), sorted.
    """
    both = per_sample(
        events[~match_codes(events["code"], STATIC_CODES)], samples, ("time", "code", "value")
    )
    inside = (both["time"] < both["cutoff"]) & (both["time"] >= both["start"])
    kept = both.loc[inside, ["sample", "time", "code", "value"]]
    kept = kept.rename(columns={"sample": "subject_id"})
    last = kept.groupby("subject_id")["time"].max()
    with_inputs = samples.loc[last.index]
    tokens = []
    for code in (
        [f"GENDER/{s}" if s else "GENDER/unknown" for s in with_inputs["sex"]],
        [age_token(a) for a in with_inputs["age_years"].to_numpy(dtype=np.float64)],
    ):
        tokens.append(
            pd.DataFrame(
                {"subject_id": last.index.to_numpy(), "time": last.to_numpy(),
                 "code": code, "value": np.nan}
            )
        )  # fmt: skip
    out = pd.concat([kept, *tokens], ignore_index=True)
    out["subject_id"] = out["subject_id"].astype(np.int64)
    out["code"] = out["code"].astype(str)
    return out.sort_values(["subject_id", "time", "code"], kind="stable").reset_index(drop=True)


def as_sample_keyed(samples: pd.DataFrame) -> pd.DataFrame:
    """``samples`` with ``subject_id`` set to the sample id, matching the histories of
    :func:`input_events` (what the featurizers receive)."""
    return samples.assign(subject_id=samples.index.to_numpy(dtype=np.int64))


def as_history(
    inputs: pd.DataFrame, samples: pd.DataFrame, visit_hours: float = VISIT_HOURS
) -> HistorySet:
    """The input events (of :func:`input_events`, keyed by sample id) as a
    :class:`HistorySet` of ``visit_hours`` bins before each cutoff."""
    cutoff = samples["cutoff"]
    sid = inputs["subject_id"].to_numpy()
    bins = np.floor((inputs["time"].to_numpy() - cutoff.reindex(sid).to_numpy()) / visit_hours)
    frame = pd.DataFrame({"subject_id": sid, "bin": bins, "time": inputs["time"].to_numpy()})
    visits = frame.groupby(["subject_id", "bin"], sort=True)["time"].agg(["min", "max"])
    visits = visits.reset_index()
    table = pd.DataFrame(
        {
            "subject_id": visits["subject_id"].to_numpy(dtype=np.int64),
            "visit": visits.groupby("subject_id").cumcount().to_numpy(dtype=np.int64),
            "start": visits["min"].to_numpy(dtype=np.float64),
            "end": visits["max"].to_numpy(dtype=np.float64),
        }
    )
    report = ReadReport(
        "task inputs", n_subjects=int(table["subject_id"].nunique()), n_events=len(inputs)
    )
    origin = pd.Series(pd.NaT, index=np.unique(sid), dtype="datetime64[us, UTC]")
    return HistorySet(events=inputs, visits=table, origin=origin, report=report)


def code_counts(inputs: pd.DataFrame, ids: np.ndarray, columns: list[str]) -> np.ndarray:
    """(N, C) counts of each code of ``columns`` among the input events of samples ``ids``."""
    ev = inputs[inputs["subject_id"].isin(ids) & inputs["code"].isin(columns)]
    table = pd.crosstab(ev["subject_id"], ev["code"])
    table = table.reindex(index=np.asarray(ids), columns=columns, fill_value=0)
    return table.fillna(0).to_numpy(dtype=np.float64)
