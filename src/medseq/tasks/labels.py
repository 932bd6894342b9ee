"""Labels of a config task: a code, death, or a value crossing a threshold, within a
window after the prediction time.

The window is ``(t, t + within_hours]`` where ``t`` is the prediction time: an event *at*
``t`` is neither an input (inputs are strictly before ``t``) nor an outcome, so an anchor
event never labels its own sample.

A subject without the outcome whose record stops before the window ends (its last event,
death excluded, is earlier than ``t + within_hours``) is *censored*: we do not know whether
the outcome happened. ``censored = "exclude"`` (the default) leaves them out, counted;
``"negative"`` counts them as negatives, which biases the prevalence down and is only
right when the record is known to be complete. A subject who dies in the window without
the coded outcome is followed to the end of their life: a negative, not censored.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medseq.tasks.spec import DEATH_CODE, Label, match_codes


def outcome_times(events: pd.DataFrame, label: Label) -> pd.DataFrame:
    """Events that make a sample positive: ``subject_id, time`` (for a threshold label,
    only the values that cross it)."""
    hit = match_codes(events["code"], label.patterns)
    chosen = events.loc[hit]
    if label.value_codes:
        chosen = chosen[label.crosses(chosen["value"].to_numpy(dtype=np.float64))]
    return chosen[["subject_id", "time"]]


def label_samples(
    events: pd.DataFrame, table: pd.DataFrame, last_time: pd.Series, label: Label
) -> tuple[pd.Series, pd.Series]:
    """0/1 label and the censored flag of each sample of ``table``.

    Parameters
    ----------
    events : DataFrame
        The canonical event table (every subject of ``table`` in it).
    table : DataFrame
        The samples: ``subject_id`` and ``cutoff`` (prediction time in hours on the
        subject's clock), indexed by a unique sample key.
    last_time : Series
        The time of each subject's last event (follow-up end), indexed by ``subject_id``.
    label : Label

    Returns
    -------
    positive : Series of int64
        1 if an outcome event falls in ``(cutoff, cutoff + within_hours]``.
    censored : Series of bool
        True for negatives whose follow-up ends before the window does.
    """
    from medseq.tasks.cohort import per_sample

    end = table["cutoff"] + label.within_hours
    hits = per_sample(outcome_times(events, label), table)
    inside = (hits["time"] > hits["cutoff"]) & (hits["time"] <= hits["cutoff"] + label.within_hours)
    positive = pd.Series(
        table.index.isin(hits.loc[inside, "sample"].unique()).astype(np.int64),
        index=table.index,
        name="label",
    )
    deaths = events.loc[events["code"] == DEATH_CODE, ["subject_id", "time"]]
    death = deaths.groupby("subject_id")["time"].min().reindex(table["subject_id"]).to_numpy()
    died_in_window = pd.Series(death <= end.to_numpy(), index=table.index)
    followed = last_time.reindex(table["subject_id"]).to_numpy() >= end.to_numpy()
    censored = (positive == 0) & ~died_in_window & ~pd.Series(followed, index=table.index)
    return positive, censored.rename("censored")
