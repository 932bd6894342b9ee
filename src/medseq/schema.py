"""The canonical data types and the one place where bad input is rejected.

Events
    A long table with one row per observation: ``subject_id`` (int64), ``time``
    (float64 hours since the subject's reference time, e.g. ICU admission),
    ``code`` (string variable name or clinical code) and ``value`` (float64, NaN for
    code-only events such as a diagnosis). Rows are sorted by (subject_id, time).

Every reader returns a :class:`ReadReport` beside its data, so that what was skipped
or repaired is counted and shown to the user instead of disappearing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

EVENT_COLUMNS: tuple[str, ...] = ("subject_id", "time", "code", "value")

OnBad = Literal["raise", "warn", "skip"]


class DataError(ValueError):
    """Input data is malformed. The message names the file, line or field at fault."""


@dataclass
class ReadReport:
    """Counts of the rows a reader skipped or repaired, keyed by reason."""

    source: str
    n_subjects: int = 0
    n_events: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, reason: str, n: int = 1) -> None:
        if n:
            self.counts[reason] = self.counts.get(reason, 0) + int(n)

    def summary(self) -> str:
        parts = [f"{self.source}: {self.n_subjects} subjects, {self.n_events} events"]
        parts += [f"{reason}: {n}" for reason, n in sorted(self.counts.items())]
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "n_subjects": self.n_subjects,
            "n_events": self.n_events,
            "counts": dict(self.counts),
        }


def validate_events(events: pd.DataFrame, where: str = "events") -> pd.DataFrame:
    """Check an event table against the canonical schema and return it with exact dtypes.

    Raises
    ------
    DataError
        On missing columns, non-numeric or non-finite times, infinite values, or rows
        out of (subject_id, time) order.
    """
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise DataError(f"{where}: missing columns {missing}; expected {list(EVENT_COLUMNS)}")
    out = events.loc[:, list(EVENT_COLUMNS)]
    try:
        subject = out["subject_id"].to_numpy(dtype=np.int64)
        time = out["time"].to_numpy(dtype=np.float64)
        value = pd.to_numeric(out["value"], errors="raise").to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(f"{where}: non-numeric subject_id, time or value ({err})") from None
    bad_time = ~np.isfinite(time)
    if bad_time.any():
        row = int(np.flatnonzero(bad_time)[0])
        raise DataError(f"{where}: row {row}: time must be finite, got {time[row]!r}")
    bad_value = np.isinf(value)
    if bad_value.any():
        row = int(np.flatnonzero(bad_value)[0])
        raise DataError(f"{where}: row {row}: value must not be infinite, got {value[row]!r}")
    if len(subject) > 1:
        step_back = (np.diff(subject) < 0) | ((np.diff(subject) == 0) & (np.diff(time) < 0))
        if step_back.any():
            row = int(np.flatnonzero(step_back)[0]) + 1
            raise DataError(
                f"{where}: row {row} is out of order (subject {subject[row]}, time {time[row]}): "
                "events must be sorted by subject_id then time"
            )
    return pd.DataFrame(
        {
            "subject_id": subject,
            "time": time,
            "code": out["code"].astype("str").reset_index(drop=True),
            "value": value,
        }
    )


def check_known_keys(where: str, given: dict, allowed: set[str] | list[str]) -> None:
    """Reject keys a config section does not define, so a typo never falls back to a default.

    Raises
    ------
    TypeError
        If ``given`` is not a dict.
    ValueError
        Naming the unknown keys and listing the allowed ones.
    """
    if not isinstance(given, dict):
        raise TypeError(f"{where}: expected a dict, got {type(given).__name__}")
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; allowed: {sorted(allowed)}")
