"""Labels of a config task: a code (or death) within a window after the prediction time.

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
    """Events that make a sample positive: ``subject_id, time``."""
    hit = match_codes(events["code"], label.patterns)
    return events.loc[hit, ["subject_id", "time"]]


def label_samples(
    events: pd.DataFrame, cutoff: pd.Series, last_time: pd.Series, label: Label
) -> tuple[pd.Series, pd.Series]:
    """0/1 label and the censored flag of each subject of ``cutoff``.

    Parameters
    ----------
    events : DataFrame
        The canonical event table (every subject of ``cutoff`` in it).
    cutoff : Series
        Prediction time in hours on each subject's clock, indexed by ``subject_id``.
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
    end = cutoff + label.within_hours
    hits = outcome_times(events, label)
    hits = hits[hits["subject_id"].isin(cutoff.index)]
    subject = hits["subject_id"].to_numpy()
    inside = (hits["time"].to_numpy() > cutoff.reindex(subject).to_numpy()) & (
        hits["time"].to_numpy() <= end.reindex(subject).to_numpy()
    )
    positive = pd.Series(0, index=cutoff.index, dtype=np.int64, name="label")
    positive.loc[np.unique(subject[inside])] = 1
    deaths = events.loc[events["code"] == DEATH_CODE, ["subject_id", "time"]]
    death = deaths.groupby("subject_id")["time"].min().reindex(cutoff.index)
    died_in_window = (death <= end).fillna(False).astype(bool)
    followed = last_time.reindex(cutoff.index) >= end
    censored = (positive == 0) & ~died_in_window & ~followed
    return positive, censored.rename("censored")
