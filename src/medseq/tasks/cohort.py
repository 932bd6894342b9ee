"""Samples of a config task: prediction times, the cohort filters, labels, all counted.

:func:`build_task` turns the canonical event table of any reader into one sample per
subject (``sample_id`` = ``subject_id``): its prediction time (``cutoff``, hours on the
subject's clock), the start of its observation window, its age and sex at that time, and
its 0/1 label. Every subject left out is counted under the step that removed it, in the
order the steps run (:attr:`TaskSamples.cohort`):

1. ``no_prediction_time``: no anchor event (an anchor task).
2. ``born_after_prediction_time``, ``died_before_prediction_time``: not alive at ``t``
   (death at ``t`` or before).
3. ``sex_not_in_cohort``, ``age_unknown``, ``age_outside_range``: the static filters.
4. ``required_code_absent``, ``excluded_code_present``: codes before ``t``.
5. ``too_few_input_events``: fewer than ``min_events`` events in the observation window.
6. ``censored``: see :mod:`medseq.tasks.labels`.

Static facts come from the MEDS conventions every reader writes: ``MEDS_BIRTH`` (age),
``GENDER/<x>`` (sex), ``MEDS_DEATH``. The inputs a model may see are
:func:`medseq.tasks.inputs.input_events`: nothing at or after ``t``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medseq.schema import DataError
from medseq.tasks.labels import label_samples
from medseq.tasks.spec import (
    BIRTH_CODE,
    DEATH_CODE,
    GENDER_PREFIX,
    HOURS_PER_YEAR,
    Cohort,
    PredictionTime,
    TaskSpec,
    match_codes,
)

logger = logging.getLogger(__name__)
STATIC_CODES = (BIRTH_CODE, DEATH_CODE, f"{GENDER_PREFIX}*")


@dataclass
class TaskSamples:
    """The samples of a config task.

    Attributes
    ----------
    samples : DataFrame
        Indexed by ``sample_id`` (= ``subject_id``): ``subject_id``, ``cutoff`` (prediction
        time, hours), ``start`` (observation window start, hours; -inf for the whole past),
        ``age_years`` (NaN if no birth event) and ``sex`` (``""`` if no gender event).
    labels : Series
        0/1 (int64), indexed like ``samples``.
    cohort : DataFrame
        One row per step: ``step``, ``n_excluded``, ``n_remaining``.
    """

    samples: pd.DataFrame
    labels: pd.Series
    cohort: pd.DataFrame


def prediction_times(events: pd.DataFrame, origin: pd.Series, when: PredictionTime) -> pd.Series:
    """Prediction time in hours per subject (subjects without an anchor are absent).

    ``occurrence = "last"`` picks the last anchor event of the whole record: choosing it
    uses the knowledge that no later one comes, which suits "the outcome of the final
    stay" questions but selects on the future; ``"first"`` does not.
    """
    if when.date:
        subjects = np.unique(events["subject_id"].to_numpy())
        start = pd.to_datetime(origin.reindex(subjects), utc=True)
        if start.isna().any():
            missing = subjects[start.isna().to_numpy()][:3].tolist()
            raise DataError(f"no time origin (hour 0) for subjects {missing}: cannot place a date")
        hours = (when.instant() - start) / pd.Timedelta(hours=1)
        return pd.Series(hours.to_numpy(dtype=np.float64), index=subjects, name="cutoff")
    anchors = events.loc[match_codes(events["code"], when.anchor), ["subject_id", "time"]]
    grouped = anchors.groupby("subject_id")["time"]
    times = grouped.min() if when.occurrence == "first" else grouped.max()
    return (times + when.offset_hours).astype(np.float64).rename("cutoff")


class _Steps:
    """The cohort table, filled as each filter runs."""

    def __init__(self, n_start: int) -> None:
        self.rows = [("subjects in the data", 0, n_start)]

    def keep(self, step: str, mask: pd.Series) -> None:
        self.rows.append((step, int((~mask).sum()), int(mask.sum())))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["step", "n_excluded", "n_remaining"])


def _statics(events: pd.DataFrame) -> pd.DataFrame:
    """Per subject: ``birth``, ``death`` (first time, NaN if none), ``sex``, ``last_time``."""
    by = events.groupby("subject_id")
    codes = events["code"].astype(str)
    first = {
        name: events[codes == code].groupby("subject_id")["time"].min()
        for name, code in (("birth", BIRTH_CODE), ("death", DEATH_CODE))
    }
    gender = events[codes.str.startswith(GENDER_PREFIX)].groupby("subject_id")["code"].first()
    table = pd.DataFrame(index=by.size().index)
    table["birth"] = first["birth"].reindex(table.index)
    table["death"] = first["death"].reindex(table.index)
    table["sex"] = gender.str.slice(len(GENDER_PREFIX)).reindex(table.index).fillna("")
    not_death = events[codes != DEATH_CODE]
    table["last_time"] = not_death.groupby("subject_id")["time"].max().reindex(table.index)
    return table


def _any_before(events: pd.DataFrame, cutoff: pd.Series, patterns: tuple[str, ...]) -> pd.Series:
    hit = events.loc[match_codes(events["code"], patterns), ["subject_id", "time"]]
    hit = hit[hit["subject_id"].isin(cutoff.index)]
    before = hit["time"].to_numpy() < cutoff.reindex(hit["subject_id"]).to_numpy()
    found = np.unique(hit["subject_id"].to_numpy()[before])
    return pd.Series(cutoff.index.isin(found), index=cutoff.index)


def _input_counts(events: pd.DataFrame, cutoff: pd.Series, start: pd.Series) -> pd.Series:
    ev = events[events["subject_id"].isin(cutoff.index)]
    ev = ev[~match_codes(ev["code"], STATIC_CODES)]
    sid = ev["subject_id"].to_numpy()
    inside = (ev["time"].to_numpy() < cutoff.reindex(sid).to_numpy()) & (
        ev["time"].to_numpy() >= start.reindex(sid).to_numpy()
    )
    return pd.Series(sid[inside]).value_counts().reindex(cutoff.index, fill_value=0)


def _alive_at_cutoff(statics: pd.DataFrame, cutoff: pd.Series, steps: _Steps) -> pd.Series:
    """Subjects born before and alive after their prediction time (death at ``t`` is out)."""
    steps.keep("no_prediction_time", pd.Series(statics.index.isin(cutoff.index)))
    s = statics.loc[cutoff.index]
    born = ~(s["birth"] > cutoff)
    steps.keep("born_after_prediction_time", born)
    alive = born & ~(s["death"] <= cutoff)
    steps.keep("died_before_prediction_time", alive[born])
    return cutoff[alive]


def _static_filters(
    statics: pd.DataFrame, cutoff: pd.Series, cohort: Cohort, steps: _Steps
) -> pd.Series:
    """Subjects whose sex and age at the prediction time the cohort accepts."""
    s = statics.loc[cutoff.index]
    age = (cutoff - s["birth"]) / HOURS_PER_YEAR
    keep = s["sex"].isin(cohort.sex) if cohort.sex else pd.Series(True, index=s.index)
    steps.keep("sex_not_in_cohort", keep)
    age_filtered = cohort.min_age_years > 0 or cohort.max_age_years < 200
    known = keep & (age.notna() if age_filtered else True)
    steps.keep("age_unknown", known[keep])
    in_range = known
    if age_filtered:
        in_range = known & age.between(cohort.min_age_years, cohort.max_age_years)
    steps.keep("age_outside_range", in_range[known])
    return cutoff[in_range]


def _code_filters(
    events: pd.DataFrame, cutoff: pd.Series, cohort: Cohort, steps: _Steps
) -> pd.Series:
    """Subjects with a required code, and without an excluded one, before ``t``."""
    if cohort.require_codes:
        has = _any_before(events, cutoff, cohort.require_codes)
        steps.keep("required_code_absent", has)
        cutoff = cutoff[has]
    if cohort.exclude_codes:
        clean = ~_any_before(events, cutoff, cohort.exclude_codes)
        steps.keep("excluded_code_present", clean)
        cutoff = cutoff[clean]
    return cutoff


def build_task(events: pd.DataFrame, origin: pd.Series, spec: TaskSpec) -> TaskSamples:
    """Samples, labels and the counted cohort table of ``spec`` on ``events``."""
    statics = _statics(events)
    steps = _Steps(len(statics))
    cutoff = prediction_times(events, origin, spec.prediction_time)
    cutoff = _alive_at_cutoff(statics, cutoff, steps)
    cutoff = _static_filters(statics, cutoff, spec.cohort, steps)
    cutoff = _code_filters(events, cutoff, spec.cohort, steps)
    window = spec.observation.window_hours
    start = cutoff - window if window > 0 else pd.Series(-np.inf, index=cutoff.index)
    enough = _input_counts(events, cutoff, start) >= spec.cohort.min_events
    steps.keep("too_few_input_events", enough)
    cutoff, start = cutoff[enough], start[enough]
    positive, censored = label_samples(events, cutoff, statics["last_time"], spec.label)
    if spec.label.censored == "exclude":
        steps.keep("censored", ~censored)
        cutoff, start, positive = cutoff[~censored], start[~censored], positive[~censored]
    if cutoff.empty:
        raise DataError(f"the task's cohort is empty:\n{steps.frame().to_string(index=False)}")
    ids = pd.Index(cutoff.index.to_numpy(dtype=np.int64), name="sample_id")
    age = (cutoff - statics["birth"].reindex(cutoff.index)) / HOURS_PER_YEAR
    samples = pd.DataFrame(
        {
            "subject_id": ids.to_numpy(),
            "cutoff": cutoff.to_numpy(dtype=np.float64),
            "start": start.to_numpy(dtype=np.float64),
            "age_years": age.to_numpy(dtype=np.float64),
            "sex": statics["sex"].reindex(cutoff.index).to_numpy(dtype=object),
        },
        index=ids,
    )
    labels = pd.Series(positive.to_numpy(dtype=np.int64), index=ids, name="label")
    table = steps.frame()
    logger.info(
        "task: %d samples, %d positive (%.1f %%); cohort:\n%s",
        len(labels), int(labels.sum()), 100 * labels.mean(), table.to_string(index=False),
    )  # fmt: skip
    return TaskSamples(samples=samples, labels=labels, cohort=table)
