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
6. ``censored``: see :mod:`medseq.tasks.labels` (not for labels read from a MEDS file).

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
from medseq.tasks.meds_labels import read_meds_labels
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
        Indexed by ``sample_id`` (= ``subject_id`` when each subject has one sample):
        ``subject_id``, ``cutoff`` (prediction time, hours), ``start`` (observation window
        start, hours; -inf for the whole past), ``age_years`` (NaN if no birth event) and
        ``sex`` (``""`` if no gender event).
    labels : Series
        0/1 (int64), indexed like ``samples``.
    cohort : DataFrame
        One row per step: ``step``, ``n_excluded``, ``n_remaining``, ``n_subjects``.
    """

    samples: pd.DataFrame
    labels: pd.Series
    cohort: pd.DataFrame


def prediction_times(events: pd.DataFrame, origin: pd.Series, when: PredictionTime) -> pd.Series:
    """Prediction times in hours, indexed by ``subject_id`` (repeated for ``"every"``;
    subjects without an anchor are absent), sorted by subject then time.

    ``occurrence = "last"`` picks the last anchor event of the whole record: choosing it
    uses the knowledge that no later one comes, which suits "the outcome of the final
    stay" questions but selects on the future; ``"first"`` and ``"every"`` do not. Two
    anchor events at the same instant give one prediction time.
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
    if when.occurrence == "every":
        every = anchors.drop_duplicates().sort_values(["subject_id", "time"], kind="stable")
        times = pd.Series(every["time"].to_numpy(), index=pd.Index(every["subject_id"].to_numpy()))
    else:
        grouped = anchors.groupby("subject_id")["time"]
        times = grouped.min() if when.occurrence == "first" else grouped.max()
    return (times + when.offset_hours).astype(np.float64).rename("cutoff")


class _Steps:
    """The cohort table, filled as each filter runs (counts of samples, and of subjects)."""

    def __init__(self, n_start: int) -> None:
        self.rows = [("subjects in the data", 0, n_start, n_start)]

    def keep(self, step: str, mask: pd.Series, subjects: pd.Series) -> None:
        kept = np.asarray(mask, dtype=bool)
        n_subjects = int(pd.unique(np.asarray(subjects)[kept]).size)
        self.rows.append((step, int((~kept).sum()), int(kept.sum()), n_subjects))

    def note(self, step: str, table: pd.DataFrame) -> None:
        self.rows.append((step, 0, len(table), int(table["subject_id"].nunique())))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["step", "n_excluded", "n_remaining", "n_subjects"])


def statics_of(events: pd.DataFrame) -> pd.DataFrame:
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


def per_sample(
    events: pd.DataFrame, table: pd.DataFrame, columns: tuple[str, ...] = ("time",)
) -> pd.DataFrame:
    """Each event of ``events`` paired with every sample of its subject in ``table``
    (index = sample key; ``subject_id, cutoff``, optionally ``start``): ``sample`` and the
    sample's columns beside the event's ``columns``. One row per (event, sample)."""
    keys = table[[c for c in ("subject_id", "cutoff", "start") if c in table.columns]]
    keys = keys.rename_axis("sample").reset_index()
    ev = events.loc[events["subject_id"].isin(keys["subject_id"]), ["subject_id", *columns]]
    return ev.merge(keys, on="subject_id", how="inner", sort=False)


def _any_before(events: pd.DataFrame, table: pd.DataFrame, patterns: tuple[str, ...]) -> pd.Series:
    hit = per_sample(events.loc[match_codes(events["code"], patterns)], table)
    found = hit.loc[hit["time"] < hit["cutoff"], "sample"].unique()
    return pd.Series(table.index.isin(found), index=table.index)


def _input_counts(events: pd.DataFrame, table: pd.DataFrame) -> pd.Series:
    ev = events[~match_codes(events["code"], STATIC_CODES)]
    both = per_sample(ev, table)
    inside = (both["time"] < both["cutoff"]) & (both["time"] >= both["start"])
    return both.loc[inside, "sample"].value_counts().reindex(table.index, fill_value=0)


def _alive_at_cutoff(statics: pd.DataFrame, table: pd.DataFrame, steps: _Steps) -> pd.DataFrame:
    """Samples of subjects born before and alive after the prediction time (death at ``t``
    is out)."""
    has_time = pd.Series(statics.index.isin(table["subject_id"]), index=statics.index)
    steps.keep("no_prediction_time", has_time, statics.index.to_series())
    if table["subject_id"].duplicated().any():
        steps.note("prediction times", table)
    s = statics.loc[table["subject_id"]].set_index(table.index)
    born = ~(s["birth"] > table["cutoff"])
    steps.keep("born_after_prediction_time", born, table["subject_id"])
    alive = born & ~(s["death"] <= table["cutoff"])
    steps.keep("died_before_prediction_time", alive[born], table.loc[born, "subject_id"])
    return table[alive]


def _static_filters(
    statics: pd.DataFrame, table: pd.DataFrame, cohort: Cohort, steps: _Steps
) -> pd.DataFrame:
    """Samples whose subject's sex and age at the prediction time the cohort accepts."""
    s = statics.loc[table["subject_id"]].set_index(table.index)
    age = (table["cutoff"] - s["birth"]) / HOURS_PER_YEAR
    sid = table["subject_id"]
    keep = s["sex"].isin(cohort.sex) if cohort.sex else pd.Series(True, index=s.index)
    steps.keep("sex_not_in_cohort", keep, sid)
    age_filtered = cohort.min_age_years > 0 or cohort.max_age_years < 200
    known = keep & (age.notna() if age_filtered else True)
    steps.keep("age_unknown", known[keep], sid[keep])
    in_range = known
    if age_filtered:
        in_range = known & age.between(cohort.min_age_years, cohort.max_age_years)
    steps.keep("age_outside_range", in_range[known], sid[known])
    return table[in_range]


def _code_filters(
    events: pd.DataFrame, table: pd.DataFrame, cohort: Cohort, steps: _Steps
) -> pd.DataFrame:
    """Samples with a required code, and without an excluded one, before ``t``."""
    if cohort.require_codes:
        has = _any_before(events, table, cohort.require_codes)
        steps.keep("required_code_absent", has, table["subject_id"])
        table = table[has]
    if cohort.exclude_codes:
        clean = ~_any_before(events, table, cohort.exclude_codes)
        steps.keep("excluded_code_present", clean, table["subject_id"])
        table = table[clean]
    return table


def _sample_table(cutoff: pd.Series) -> pd.DataFrame:
    """``subject_id, cutoff`` keyed by a running sample key (subject and time order)."""
    order = np.lexsort((cutoff.to_numpy(), cutoff.index.to_numpy()))
    return pd.DataFrame(
        {
            "subject_id": cutoff.index.to_numpy(dtype=np.int64)[order],
            "cutoff": cutoff.to_numpy(dtype=np.float64)[order],
        }
    )


def sample_frame(statics: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The samples of ``table`` (``subject_id, cutoff, start``) with age and sex at the
    prediction time, indexed by ``sample_id``: the subject id when each subject has one
    sample, else ``0..N-1`` in the table's order. Training (:func:`build_task`) and the
    REST service build samples through this one function."""
    one_each = not table["subject_id"].duplicated().any()
    ids = pd.Index(
        table["subject_id"].to_numpy(dtype=np.int64) if one_each else np.arange(len(table)),
        name="sample_id",
    )
    subject = table["subject_id"].to_numpy(dtype=np.int64)
    birth = statics["birth"].reindex(subject).to_numpy(dtype=np.float64)
    cutoff = table["cutoff"].to_numpy(dtype=np.float64)
    return pd.DataFrame(
        {
            "subject_id": subject,
            "cutoff": cutoff,
            "start": table["start"].to_numpy(dtype=np.float64),
            "age_years": (cutoff - birth) / HOURS_PER_YEAR,
            "sex": statics["sex"].reindex(subject).to_numpy(dtype=object),
        },
        index=ids,
    )


def build_task(events: pd.DataFrame, origin: pd.Series, spec: TaskSpec) -> TaskSamples:
    """Samples, labels and the counted cohort table of ``spec`` on ``events``."""
    statics = statics_of(events)
    steps = _Steps(len(statics))
    given: pd.Series | None = None
    if spec.meds_labels is not None:
        from_file = read_meds_labels(spec.meds_labels, origin)
        table = _sample_table(from_file["cutoff"].set_axis(from_file["subject_id"].to_numpy()))
        given = pd.Series(
            from_file.sort_values(["subject_id", "cutoff"], kind="stable")["label"].to_numpy()
        )
        unknown = ~table["subject_id"].isin(statics.index)
        if unknown.any():
            logger.warning(
                "%d label rows name subjects absent from the events (e.g. %s): left out",
                int(unknown.sum()), table.loc[unknown, "subject_id"].head(3).tolist(),
            )  # fmt: skip
            steps.keep("label_subject_not_in_data", ~unknown, table["subject_id"])
            table, given = table[~unknown], given[~unknown]
    else:
        assert spec.prediction_time is not None and spec.label is not None  # from_dict checks
        table = _sample_table(prediction_times(events, origin, spec.prediction_time))
    table = _alive_at_cutoff(statics, table, steps)
    table = _static_filters(statics, table, spec.cohort, steps)
    table = _code_filters(events, table, spec.cohort, steps)
    window = spec.observation.window_hours
    table = table.assign(start=table["cutoff"] - window if window > 0 else -np.inf)
    enough = _input_counts(events, table) >= spec.cohort.min_events
    steps.keep("too_few_input_events", enough, table["subject_id"])
    table = table[enough]
    if given is not None:
        positive = given.loc[table.index].astype(np.int64)
    else:
        assert spec.label is not None
        positive, censored = label_samples(events, table, statics["last_time"], spec.label)
        if spec.label.censored == "exclude":
            steps.keep("censored", ~censored, table["subject_id"])
            table, positive = table[~censored], positive[~censored]
    if table.empty:
        raise DataError(f"the task's cohort is empty:\n{steps.frame().to_string(index=False)}")
    samples = sample_frame(statics, table)
    ids = samples.index
    labels = pd.Series(positive.to_numpy(dtype=np.int64), index=ids, name="label")
    cohort_table = steps.frame()
    logger.info(
        "task: %d samples of %d subjects, %d positive (%.1f %%); cohort:\n%s",
        len(labels), samples["subject_id"].nunique(), int(labels.sum()), 100 * labels.mean(),
        cohort_table.to_string(index=False),
    )  # fmt: skip
    return TaskSamples(samples=samples, labels=labels, cohort=cohort_table)
