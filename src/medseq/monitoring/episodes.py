"""Rhythm episodes from per-beat evidence, with onset/offset hysteresis and a minimum duration.

A single odd beat is not an arrhythmia, and a monitor that raises and clears an alarm on
every other beat is ignored. An :class:`EpisodeTracker` opens an episode only when the
evidence has held for ``min_on_beats`` beats *and* ``min_on_s`` seconds, and closes it only
when the contrary evidence has held for ``min_off_beats`` beats and ``min_off_s`` seconds:
the gap between the two thresholds is the hysteresis. The onset is dated at the first beat
of the evidence (when it began), and reported at the beat that completed it (when the
monitor could know).

Two kinds of evidence are used by :mod:`medseq.monitoring.detector`:

- beat runs (ventricular or supraventricular): the beat's label is the run's class
  (the EC57 definition of a run is three or more consecutive ectopic beats);
- atrial fibrillation: the share of irregular successive RR differences over the last
  ``n`` intervals (:class:`RRIrregularity`), high in AF whatever the beat labels. This is
  a rule, not a trained model; its thresholds are set from the literature below, not tuned
  on any test record.

Reference: Tateno K, Glass L. Automatic detection of atrial fibrillation using the
coefficient of variation and density histograms of RR and deltaRR intervals. Med Biol Eng
Comput 2001;39:664-671 (irregularity of successive RR differences in AF).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from medseq.monitoring.dsp import median


@dataclass(frozen=True)
class EpisodeRule:
    """When an episode opens and closes.

    Parameters
    ----------
    name : str
        The episode's name in alerts, e.g. ``"V run"``.
    min_on_beats, min_off_beats : int
        Beats of evidence (for, against) needed to open and to close.
    min_on_s, min_off_s : float
        Seconds of evidence needed to open and to close.
    """

    name: str
    min_on_beats: int = 3
    min_off_beats: int = 2
    min_on_s: float = 0.0
    min_off_s: float = 0.0

    def __post_init__(self) -> None:
        for field in ("min_on_beats", "min_off_beats"):
            if getattr(self, field) < 1:
                raise ValueError(f"EpisodeRule.{field} must be >= 1, got {getattr(self, field)}")
        for field in ("min_on_s", "min_off_s"):
            if getattr(self, field) < 0:
                raise ValueError(f"EpisodeRule.{field} must be >= 0, got {getattr(self, field)}")


@dataclass(frozen=True)
class Alert:
    """An episode opened (``onset``), closed (``offset``) or was cut by bad signal quality
    (``suppressed``, ``reason`` says why). Times are seconds on the stream's clock."""

    kind: str
    episode: str
    start_s: float  # when the evidence began (onset) or ended (offset)
    reported_s: float  # when the monitor knew
    reason: str = ""


class EpisodeTracker:
    """Open and close one kind of episode from a stream of (time, evidence) per beat."""

    def __init__(self, rule: EpisodeRule) -> None:
        self.rule = rule
        self.reset()

    def reset(self) -> None:
        """Forget the evidence (after bad signal quality); an open episode stays open only
        if the caller has not closed it with :meth:`suppress`."""
        self.open = getattr(self, "open", False)
        self._run_beats = 0
        self._run_start_s = 0.0

    def update(self, time_s: float, evidence: bool) -> Alert | None:
        """One beat's evidence (``True``: for the episode). Returns an alert on a change."""
        toward = evidence != self.open  # evidence for changing the state
        if not toward:
            self._run_beats = 0
            return None
        if self._run_beats == 0:
            self._run_start_s = time_s
        self._run_beats += 1
        beats, seconds = (
            (self.rule.min_on_beats, self.rule.min_on_s)
            if not self.open
            else (self.rule.min_off_beats, self.rule.min_off_s)
        )
        if self._run_beats < beats or time_s - self._run_start_s < seconds:
            return None
        self.open = not self.open
        self._run_beats = 0
        return Alert("onset" if self.open else "offset", self.rule.name, self._run_start_s, time_s)

    def suppress(self, time_s: float, reason: str) -> Alert | None:
        """Bad signal: close an open episode (saying why) and forget the evidence."""
        was_open, self.open = self.open, False
        self.reset()
        if was_open:
            return Alert("suppressed", self.rule.name, time_s, time_s, reason)
        return None


class RRIrregularity:
    """Share of the last ``n_intervals`` successive RR differences larger than
    ``threshold`` times their median RR: near 0 in sinus rhythm, high in AF."""

    def __init__(self, n_intervals: int = 32, threshold: float = 0.1) -> None:
        self.n_intervals, self.threshold = n_intervals, threshold
        self.reset()

    def reset(self) -> None:
        """Forget the RR intervals (after a gap or bad signal)."""
        self._rr: deque[float] = deque(maxlen=self.n_intervals + 1)

    def update(self, rr_s: float) -> float | None:
        """Add one RR interval; the share, or None until ``n_intervals`` differences exist."""
        self._rr.append(rr_s)
        if len(self._rr) <= self.n_intervals:
            return None
        rr = np.fromiter(self._rr, np.float64, len(self._rr))
        irregular = np.count_nonzero(np.abs(np.diff(rr)) > self.threshold * median(rr))
        return irregular / (len(rr) - 1)
