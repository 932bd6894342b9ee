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

from collections.abc import Collection
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


def check_known_keys(where: str, given: dict, allowed: Collection[str]) -> None:
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


@dataclass(frozen=True, eq=False)
class Signal:
    """One multichannel waveform recording, validated on construction.

    Signals are the waveform counterpart of Events (ECG, EEG): a dense array sampled at a
    fixed rate, plus optional point annotations such as reference beat labels placed at
    the R peak (MIT-BIH ``atr`` files).

    Parameters
    ----------
    record_id : str
        Name of the recording (e.g. ``"A00001"``, ``"100"``); used in error messages.
    samples : ndarray of shape (n_samples, n_channels)
        Physical values, converted to float32.
    fs_hz : float
        Sampling frequency in hertz, > 0.
    channel_names : tuple of str
        One name per channel (e.g. ``("MLII", "V1")``).
    units : tuple of str
        One physical unit per channel (e.g. ``("mV", "mV")``).
    annotation_samples : ndarray of shape (n_annotations,), optional
        Sample index of each annotation, int64, non-decreasing, in ``[0, n_samples)``.
    annotation_symbols : tuple of str, optional
        One symbol per annotation (WFDB annotation codes such as ``"N"``, ``"V"``, ``"+"``).

    Raises
    ------
    DataError
        Naming the record and the field at fault.

    Notes
    -----
    Equality is identity (``eq=False``): comparing two recordings sample by sample is an
    explicit ``np.array_equal``, never an accidental ``==``.
    """

    record_id: str
    samples: np.ndarray
    fs_hz: float
    channel_names: tuple[str, ...]
    units: tuple[str, ...]
    annotation_samples: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    annotation_symbols: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        where = f"signal {self.record_id!r}"
        samples = np.asarray(self.samples)
        if samples.ndim != 2 or samples.shape[0] == 0 or samples.shape[1] == 0:
            raise DataError(
                f"{where}: samples must be a non-empty (n_samples, n_channels) array, "
                f"got shape {samples.shape}"
            )
        if not np.issubdtype(samples.dtype, np.number):
            raise DataError(f"{where}: samples must be numeric, got dtype {samples.dtype}")
        samples = samples.astype(np.float32, copy=False)
        if not np.isfinite(samples).all():
            row = int(np.flatnonzero(~np.isfinite(samples).all(axis=1))[0])
            raise DataError(f"{where}: samples has NaN or inf (first at sample {row})")
        fs_hz = float(self.fs_hz)
        if not np.isfinite(fs_hz) or fs_hz <= 0:
            raise DataError(f"{where}: fs_hz must be a finite number > 0, got {self.fs_hz!r}")
        n_channels = samples.shape[1]
        for name in ("channel_names", "units"):
            value = tuple(getattr(self, name))
            if len(value) != n_channels:
                raise DataError(
                    f"{where}: {name} must have one entry per channel ({n_channels}), "
                    f"got {len(value)}: {value!r}"
                )
            object.__setattr__(self, name, value)
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "fs_hz", fs_hz)
        self._check_annotations(where)

    def _check_annotations(self, where: str) -> None:
        positions = np.asarray(self.annotation_samples)
        symbols = tuple(str(s) for s in self.annotation_symbols)
        if positions.ndim != 1 or len(positions) != len(symbols):
            raise DataError(
                f"{where}: annotation_samples {positions.shape} and annotation_symbols "
                f"({len(symbols)}) must be 1-D and of equal length"
            )
        if len(positions) and not np.issubdtype(positions.dtype, np.integer):
            raise DataError(f"{where}: annotation_samples must be integers, got {positions.dtype}")
        positions = positions.astype(np.int64, copy=False)
        if len(positions):
            bad = (positions < 0) | (positions >= self.n_samples)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DataError(
                    f"{where}: annotation {i} at sample {positions[i]} is outside "
                    f"[0, {self.n_samples})"
                )
            if (np.diff(positions) < 0).any():
                i = int(np.flatnonzero(np.diff(positions) < 0)[0]) + 1
                raise DataError(f"{where}: annotation {i} is out of order (sample {positions[i]})")
        object.__setattr__(self, "annotation_samples", positions)
        object.__setattr__(self, "annotation_symbols", symbols)

    @property
    def n_samples(self) -> int:
        """Number of samples per channel."""
        return int(self.samples.shape[0])

    @property
    def n_channels(self) -> int:
        """Number of channels."""
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        """Length of the recording in seconds."""
        return self.n_samples / self.fs_hz
