"""Prediction tasks on patient histories: next-visit diagnoses and in-hospital mortality.

A task turns a :class:`~medseq.sources.history.HistorySet` into *samples*: a subject and a
prediction time (``cutoff``, hours on the subject's clock). A model may only see events
strictly before the cutoff (:class:`~medseq.features.histories.visits.VisitFeaturizer` enforces it),
so no task reads its own answer.

``next_visit`` (Doctor AI, Choi et al. 2016)
    For every visit k >= 1 of a subject: the cutoff is the visit's admission, the inputs
    are visits 0..k-1, the target is the set of diagnosis groups (ICD-9 three-digit
    categories, or chapters for ``next_visit_chapter``) coded at visit k. Sample id
    ``subject_id * 1000 + k``. Visits whose diagnoses are all malformed or absent give no
    sample (counted).
``mortality``
    In-hospital death at the subject's last admission, predicted 24 h after that
    admission from everything recorded by then (earlier visits whole; the current one's
    admission type and the prescriptions started on a day that has ended). Stays that end
    (discharge or death) within those 24 h are excluded and counted: their outcome is
    known before the prediction time. Death is a ``MEDS_DEATH`` event within the stay.
    Sample id ``subject_id``.

Every split of these samples is by subject (:func:`subject_of`).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from medseq.sources.history import DEATH_CODE, HistorySet
from medseq.sources.icd9 import DX_PREFIX, group

logger = logging.getLogger(__name__)

MORTALITY_WINDOW_HOURS = 24.0
VISIT_ID_FACTOR = 1000
#: task -> diagnosis grouping level of its targets
NEXT_VISIT_LEVELS = {"next_visit": "three_digit", "next_visit_chapter": "chapter"}
TASKS = (*NEXT_VISIT_LEVELS, "mortality")


def subject_of(sample_ids: np.ndarray, task: str) -> np.ndarray:
    """The subject of each sample id of ``task`` (for subject-level splits)."""
    ids = np.asarray(sample_ids, dtype=np.int64)
    return ids // VISIT_ID_FACTOR if task in NEXT_VISIT_LEVELS else ids


def samples(history: HistorySet, task: str) -> pd.DataFrame:
    """Samples of ``task``: indexed by ``sample_id``, columns ``subject_id`` and ``cutoff``.

    ``attrs["excluded"]`` counts the samples left out, by reason.
    """
    if task in NEXT_VISIT_LEVELS:
        return _next_visit_samples(history)
    if task == "mortality":
        return _mortality_samples(history)[0]
    raise ValueError(f"unknown history task {task!r}; known: {list(TASKS)}")


def _next_visit_samples(history: HistorySet) -> pd.DataFrame:
    visits = history.visits[history.visits["visit"] >= 1]
    if (history.visits["visit"] >= VISIT_ID_FACTOR).any():
        raise ValueError(f"next_visit: a subject has more than {VISIT_ID_FACTOR} visits")
    ids = visits["subject_id"].to_numpy() * VISIT_ID_FACTOR + visits["visit"].to_numpy()
    return pd.DataFrame(
        {"subject_id": visits["subject_id"].to_numpy(), "cutoff": visits["start"].to_numpy()},
        index=pd.Index(ids, name="sample_id", dtype=np.int64),
    )


def visit_codes(history: HistorySet) -> pd.DataFrame:
    """Every event that falls in a visit: ``subject_id, visit, time, code``.

    An event belongs to the visit whose [start, end] holds its time (visits of one subject
    never overlap, :func:`~medseq.sources.history.visits_from_events` checks it).
    """
    events = history.events
    visits = history.visits.sort_values(["start"], kind="stable")
    merged = pd.merge_asof(
        events.reset_index(drop=True).sort_values("time", kind="stable"),
        visits[["subject_id", "visit", "start", "end"]],
        left_on="time",
        right_on="start",
        by="subject_id",
        direction="backward",
    )
    inside = merged["visit"].notna() & (merged["time"] <= merged["end"])
    out = merged.loc[inside, ["subject_id", "visit", "time", "code"]]
    out = out.astype({"visit": np.int64})
    return out.sort_values(["subject_id", "time"], kind="stable").reset_index(drop=True)


def next_visit_labels(history: HistorySet, task: str = "next_visit") -> pd.DataFrame:
    """0/1 frame: one row per sample, one column per diagnosis group seen in a target visit.

    Columns are every group coded at some visit k >= 1 in ``history`` (the label space of
    the task, sorted); inputs are fitted on training subjects only, never these columns.
    """
    level = NEXT_VISIT_LEVELS[task]
    table = samples(history, task)
    codes = visit_codes(history)
    dx = codes[codes["code"].str.startswith(DX_PREFIX) & (codes["visit"] >= 1)].copy()
    dx["group"] = [group(c, level) for c in dx["code"]]
    n_bad = int(dx["group"].isna().sum())
    dx = dx.dropna(subset=["group"])
    dx["sample_id"] = dx["subject_id"] * VISIT_ID_FACTOR + dx["visit"]
    frame = pd.crosstab(dx["sample_id"], dx["group"]).clip(upper=1).astype(np.float32)
    frame = frame.reindex(table.index).dropna(how="all")
    excluded = {"target_visit_without_diagnosis": len(table) - len(frame)}
    if n_bad:
        excluded["malformed_diagnosis_code"] = n_bad
    frame.columns.name = None
    frame.attrs["excluded"] = {k: v for k, v in excluded.items() if v}
    logger.info("%s: %d samples, %d groups; excluded %s", task, *frame.shape, excluded)
    return frame


def _mortality_samples(
    history: HistorySet, window_hours: float = MORTALITY_WINDOW_HOURS
) -> tuple[pd.DataFrame, pd.Series]:
    last = history.visits.sort_values(["subject_id", "visit"]).groupby("subject_id").tail(1)
    last = last.set_index("subject_id")
    events = history.events
    deaths = events[events["code"] == DEATH_CODE]
    died = pd.Series(0.0, index=last.index)
    if len(deaths):
        stay = last.reindex(deaths["subject_id"])
        in_stay = (deaths["time"].to_numpy() >= stay["start"].to_numpy()) & (
            deaths["time"].to_numpy() <= stay["end"].to_numpy()
        )
        died.loc[np.unique(deaths["subject_id"].to_numpy()[in_stay])] = 1.0
    cutoff = last["start"] + window_hours
    keep = last["end"] > cutoff
    table = pd.DataFrame(
        {"subject_id": last.index[keep].to_numpy(), "cutoff": cutoff[keep].to_numpy()},
        index=pd.Index(last.index[keep].to_numpy(), name="sample_id", dtype=np.int64),
    )
    table.attrs["excluded"] = {"stay_ended_before_prediction_time": int((~keep).sum())}
    return table, died[keep].astype(np.int64).rename("in_hospital_death")


def mortality_labels(history: HistorySet) -> pd.Series:
    """In-hospital death at the last admission (1 died), for the stays still open at 24 h."""
    table, labels = _mortality_samples(history)
    labels.index = table.index
    labels.attrs["excluded"] = {k: v for k, v in table.attrs["excluded"].items() if v}
    logger.info(
        "mortality: %d stays, %d deaths; excluded %s",
        len(labels),
        int(labels.sum()),
        labels.attrs["excluded"],
    )
    return labels


def labels(history: HistorySet, task: str) -> pd.Series | pd.DataFrame:
    """Labels of ``task`` indexed by sample id (see the module docstring)."""
    if task in NEXT_VISIT_LEVELS:
        return next_visit_labels(history, task)
    if task == "mortality":
        return mortality_labels(history)
    raise ValueError(f"unknown history task {task!r}; known: {list(TASKS)}")
