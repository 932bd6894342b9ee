"""``BeatFeaturizer``: a recording as a sequence of beats, each a vector of shape and rhythm.

Per beat (R peaks from the reference annotations or detected with ``wfdb``'s XQRS), the
columns are the beat windows chosen by ``morphology``
(:mod:`~medseq.features.signals.beat_windows`), then the values named by
:func:`~medseq.features.signals.beat_columns.scalar_feature_names`: RR rhythm
(:mod:`~medseq.features.signals.beat_rhythm`, de Chazal et al. 2004) and template matching
against the record's median beat (:mod:`~medseq.features.signals.beat_template`), then the
optional blocks, off by default so that existing configs keep their features exactly:
``qrs_shape`` (:mod:`~medseq.features.signals.qrs_shape`), ``second_lead`` (the record's
other channel, V1 in most MIT-BIH records, where a ventricular beat differs most),
``record_relative``, ``local_template`` and ``local_rhythm``.

Those modules compute the values as pure functions; this class holds the options, finds
and caches the R peaks, assembles the columns and z-scores them with the mean and standard
deviation of every column over the training beats (fitted on training records only).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from medseq.features.signals import beats, peak_cache
from medseq.features.signals.beat_columns import (
    LEAD2_TEMPLATE_FEATURES,
    SCALAR_FEATURES,
    record_relative_values,
    scalar_feature_names,
)
from medseq.features.signals.beat_rhythm import (
    LOCAL_RHYTHM_FEATURES,
    local_rhythm_values,
    rr_rhythm_values,
)
from medseq.features.signals.beat_sequence import beat_context
from medseq.features.signals.beat_template import (
    LOCAL_TEMPLATE_FEATURES,
    local_template_values,
    row_correlation,
    template_summaries,
)
from medseq.features.signals.beat_windows import (
    BeatWindowSpec,
    LeadWindows,
    lead_index,
    lead_windows,
    other_channel,
)
from medseq.features.signals.qrs_shape import (
    QRS_SHAPE_FEATURES,
    WIDTH_HALF_S,
    qrs_shape_values,
    slope_width,
)
from medseq.schema import DataError, Signal, check_known_keys

# The class, and the names importable from here since before the pure functions moved out.
__all__ = [
    "LOCAL_RHYTHM_FEATURES",
    "LOCAL_TEMPLATE_FEATURES",
    "QRS_SHAPE_FEATURES",
    "SCALAR_FEATURES",
    "BeatFeaturizer",
    "beat_context",
    "local_rhythm_values",
    "local_template_values",
    "qrs_shape_values",
    "row_correlation",
    "scalar_feature_names",
    "slope_width",
]

logger = logging.getLogger(__name__)

PEAK_SOURCES = ("annotations", "xqrs")
#: Beat windows per ``morphology``: how many ``W``-wide blocks come before the scalars.
MORPHOLOGIES = {"both": 2, "deviation": 1, "none": 0}


@dataclass
class BeatFeaturizer:
    """Per-beat shape and rhythm features, z-scored on the training beats.

    Parameters
    ----------
    peaks : {"annotations", "xqrs"}, default="annotations"
        R peaks from the record's beat annotations (MIT-BIH) or detected (CinC 2017).
    lead : str or None, default=None
        Channel name to use (e.g. ``"MLII"``); the first channel when None or absent.
    low_hz, high_hz : float, default=0.5, 40.0
        Band-pass applied before the beats are cut.
    before_s, after_s : float, default=0.25, 0.45
        Window around each R peak (P wave, QRS, T wave at normal rates).
    segment_fs_hz : float, default=50.0
        Rate of the stored window: 0.7 s at 50 Hz is 35 values per beat.
    local_beats : int, default=10
        Beats in the local RR average.
    morphology : {"both", "deviation", "none"}, default="both"
        Which beat windows to include: the window and its deviation from the record's
        median beat, the deviation only (shape relative to this patient's normal beat, the
        patient-independent part), or none (rhythm features only).
    local_ratios : bool, default=True
        Keep the RR ratios to the local RR; ``False`` sets these columns to zero, since a
        run of ectopic beats shortens the local RR itself and hides their prematurity
        (:func:`~medseq.features.signals.beat_rhythm.rr_rhythm_values`).
    context_beats : int, default=0
        For per-beat samples (MIT-BIH): how many preceding beats are read with each beat
        (see :func:`~medseq.features.signals.beat_sequence.beat_context`); unused for
        whole-record sequences.
    qrs_shape : bool, default=False
        Add the QRS-shape values against the record's median beat
        (:func:`~medseq.features.signals.qrs_shape.qrs_shape_values`); needs ``before_s``
        and ``after_s`` of at least 0.15 s.
    second_lead : bool, default=False
        Add the template-matching (and, with ``qrs_shape``, QRS-shape) values of the
        record's first channel other than ``lead``.
    record_relative : bool, default=False
        Add each dissimilarity to the median beat relative to its median over the record
        (:func:`~medseq.features.signals.beat_columns.record_relative_values`).
    local_template : int, default=0
        When > 0, add template matching against the median of the ``local_template``
        beats either side of each beat
        (:func:`~medseq.features.signals.beat_template.local_template_values`).
    local_rhythm : int, default=0
        When > 0, add the rhythm of the ``local_rhythm`` RR intervals either side of each
        beat (:func:`~medseq.features.signals.beat_rhythm.local_rhythm_values`).
    """

    kind: ClassVar[str] = "beats"

    peaks: str = "annotations"
    lead: str | None = None
    low_hz: float = 0.5
    high_hz: float = 40.0
    before_s: float = 0.25
    after_s: float = 0.45
    segment_fs_hz: float = 50.0
    local_beats: int = 10
    morphology: str = "both"
    local_ratios: bool = True
    context_beats: int = 0
    qrs_shape: bool = False
    second_lead: bool = False
    record_relative: bool = False
    local_template: int = 0
    local_rhythm: int = 0
    mean: list[float] | None = None
    std: list[float] | None = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False)
    detected_peaks: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.peaks not in PEAK_SOURCES:
            raise ValueError(
                f"BeatFeaturizer.peaks must be one of {PEAK_SOURCES}, got {self.peaks!r}"
            )
        if not 0 < self.low_hz < self.high_hz:
            raise ValueError(
                f"BeatFeaturizer needs 0 < low_hz < high_hz, got {self.low_hz}, {self.high_hz}"
            )
        if self.before_s <= 0 or self.after_s <= 0 or self.segment_fs_hz <= 0:
            raise ValueError("BeatFeaturizer.before_s, after_s and segment_fs_hz must be > 0")
        if self.local_beats < 1:
            raise ValueError(f"BeatFeaturizer.local_beats must be >= 1, got {self.local_beats}")
        if self.morphology not in MORPHOLOGIES:
            raise ValueError(
                f"BeatFeaturizer.morphology must be one of {tuple(MORPHOLOGIES)}, "
                f"got {self.morphology!r}"
            )
        if self.context_beats < 0:
            raise ValueError(f"BeatFeaturizer.context_beats must be >= 0, got {self.context_beats}")
        self._check_optional_blocks()

    def _check_optional_blocks(self) -> None:
        for name in ("qrs_shape", "second_lead", "record_relative"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"BeatFeaturizer.{name} must be true or false, got {getattr(self, name)!r}"
                )
        for name in ("local_template", "local_rhythm"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"BeatFeaturizer.{name} must be an int >= 0, got {value!r}")
        if self.qrs_shape and min(self.before_s, self.after_s) < WIDTH_HALF_S:
            raise ValueError(
                f"BeatFeaturizer.qrs_shape needs before_s and after_s >= {WIDTH_HALF_S} s, "
                f"got {self.before_s}, {self.after_s}"
            )

    @property
    def window_spec(self) -> BeatWindowSpec:
        """How this featurizer cuts beat windows (its band-pass, span and stored rate)."""
        return BeatWindowSpec(
            low_hz=self.low_hz,
            high_hz=self.high_hz,
            before_s=self.before_s,
            after_s=self.after_s,
            segment_fs_hz=self.segment_fs_hz,
        )

    @property
    def segment_length(self) -> int:
        """Values per stored beat window."""
        return self.window_spec.length

    @property
    def n_features(self) -> int:
        """Columns of a beat matrix: window, window minus median beat, rhythm features."""
        return MORPHOLOGIES[self.morphology] * self.segment_length + len(self.scalar_names)

    @property
    def scalar_names(self) -> list[str]:
        """Names of the per-beat values after the windows (:func:`scalar_feature_names`)."""
        return scalar_feature_names(
            qrs_shape=self.qrs_shape,
            second_lead=self.second_lead,
            record_relative=self.record_relative,
            local_template=self.local_template,
            local_rhythm=self.local_rhythm,
        )

    def _options_key(self) -> tuple:
        state = self.state_dict()
        return tuple((k, v) for k, v in state.items() if k not in ("mean", "std"))

    def _lead_index(self, signal: Signal) -> int:
        index = lead_index(signal.channel_names, self.lead)
        if self.lead is not None and self.lead not in signal.channel_names:
            logger.debug(
                "%s: no lead %s; using %s", signal.record_id, self.lead, signal.channel_names[0]
            )
        return index

    def peak_positions(self, signal: Signal) -> np.ndarray:
        """R-peak sample positions of ``signal`` from its annotations or XQRS.

        XQRS detections are remembered by record id (``detected_peaks``, not part of the
        state), so one featurizer reused across folds or option sets detects each
        recording once, and on disk by content (:mod:`medseq.features.signals.peak_cache`), so
        the next run on this machine does not detect it again.
        """
        if self.peaks == "annotations":
            positions, _ = beats.beat_annotations(signal)
            if len(positions) == 0:
                raise DataError(f"{signal.record_id}: no beat annotations (use peaks='xqrs')")
            return positions
        known = self.detected_peaks.get(signal.record_id)
        if known is not None:
            return known
        index = self._lead_index(signal)
        peaks = peak_cache.detected_peaks(signal.samples[:, index : index + 1], signal.fs_hz)
        self.detected_peaks[signal.record_id] = peaks
        return peaks

    def raw_features(self, signal: Signal) -> tuple[np.ndarray, np.ndarray]:
        """Unscaled ``(n_peaks, n_features)`` beat matrix and the R-peak positions.

        A record with fewer than three peaks has no RR context: an empty matrix is returned
        (and logged). Results are cached per record and option set, since fitting and
        transforming both need them.
        """
        key = (signal.record_id, self._options_key())
        if key in self._cache:
            return self._cache[key]
        positions = self.peak_positions(signal)
        out = self._compute(signal, positions)
        self._cache[key] = out
        return out

    def _compute(self, signal: Signal, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The beat matrix ``(N, n_features)`` of ``signal`` at R peaks ``positions``."""
        positions = np.asarray(positions, dtype=np.int64)
        if len(positions) < 3:
            logger.warning("%s: %d R peaks; no beat features", signal.record_id, len(positions))
            return np.zeros((0, self.n_features), np.float32), positions
        primary = self._lead_index(signal)
        lead1, kept = self._windows(signal, primary, positions)
        lead2 = self._second_lead_windows(signal, primary, positions) if self.second_lead else None
        windows = {
            "both": [lead1.small, lead1.deviation],
            "deviation": [lead1.deviation],
            "none": [],
        }[self.morphology]
        scalars = self._scalar_values(signal, positions, kept, lead1, lead2)
        matrix = np.concatenate([*windows, *scalars], axis=1).astype(np.float32)
        return matrix, positions

    def _windows(
        self, signal: Signal, channel: int, positions: np.ndarray
    ) -> tuple[LeadWindows, np.ndarray]:
        samples = signal.samples[:, channel : channel + 1]
        return lead_windows(samples, signal.fs_hz, positions, self.window_spec)

    def _second_lead_windows(
        self, signal: Signal, primary: int, positions: np.ndarray
    ) -> LeadWindows | None:
        """Windows of the first channel other than ``lead``; None for a single-channel
        record (whose second-lead values are zero)."""
        other = other_channel(signal.samples.shape[1], primary)
        if other is None:
            logger.debug("%s: one channel; second-lead values are zero", signal.record_id)
            return None
        return self._windows(signal, other, positions)[0]

    def _scalar_values(
        self,
        signal: Signal,
        positions: np.ndarray,
        kept: np.ndarray,
        lead1: LeadWindows,
        lead2: LeadWindows | None,
    ) -> list[np.ndarray]:
        """The blocks of :attr:`scalar_names`, each ``(N, k)``, in column order."""
        fs = signal.fs_hz
        rr = rr_rhythm_values(
            positions, fs, local_beats=self.local_beats, local_ratios=self.local_ratios
        )
        parts = [rr[kept], *self._lead_values(lead1, fs)]
        if self.second_lead:
            parts += self._lead_values(lead2, fs) if lead2 else [self._zeros(len(kept))]
        if self.record_relative:
            names = scalar_feature_names(qrs_shape=self.qrs_shape, second_lead=self.second_lead)
            parts.append(record_relative_values(np.concatenate(parts, axis=1), names))
        if self.local_template:
            parts.append(self._local_values(lead1.small))
            if self.second_lead:
                small2 = lead2.small if lead2 else np.zeros((len(kept), self.segment_length))
                parts.append(self._local_values(small2))
        if self.local_rhythm:
            parts.append(local_rhythm_values(positions, self.local_rhythm)[kept])
        return parts

    def _lead_values(self, windows: LeadWindows, fs_hz: float) -> list[np.ndarray]:
        """Template matching (and QRS shape with ``qrs_shape``) of one lead's windows."""
        spec = self.window_spec
        out = [
            template_summaries(
                windows.small, windows.deviation, r_index=spec.r_index, qrs_half=spec.qrs_half
            )
        ]
        if self.qrs_shape:
            r_index = round(self.before_s * fs_hz)
            out.append(qrs_shape_values(windows.full, fs_hz, r_index=r_index))
        return out

    def _zeros(self, n: int) -> np.ndarray:
        """The second-lead block of a single-channel record."""
        width = len(LEAD2_TEMPLATE_FEATURES) + (len(QRS_SHAPE_FEATURES) if self.qrs_shape else 0)
        return np.zeros((n, width), np.float32)

    def _local_values(self, small: np.ndarray) -> np.ndarray:
        spec = self.window_spec
        return local_template_values(
            small, self.local_template, r_index=spec.r_index, qrs_half=spec.qrs_half
        )

    def fit(self, matrices: list[np.ndarray]) -> BeatFeaturizer:
        """Column means and standard deviations of the training beats' raw features."""
        stacked = np.concatenate([m for m in matrices if len(m)]) if matrices else np.zeros((0, 1))
        if len(stacked) < 2:
            raise ValueError("BeatFeaturizer.fit needs at least two training beats")
        std = stacked.std(axis=0)
        self.mean = stacked.mean(axis=0).astype(float).tolist()
        self.std = np.where(std > 1e-6, std, 1.0).astype(float).tolist()
        return self

    def scale(self, matrix: np.ndarray) -> np.ndarray:
        """Z-score a raw beat matrix with the fitted statistics (clipped to +-10)."""
        if self.mean is None or self.std is None:
            raise RuntimeError("BeatFeaturizer used before fit")
        scaled = (matrix - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.clip(scaled, -10.0, 10.0).astype(np.float32)

    def features(self, signal: Signal) -> tuple[np.ndarray, np.ndarray]:
        """Scaled beat matrix of ``signal`` and its R-peak positions."""
        matrix, kept = self.raw_features(signal)
        return self.scale(matrix), kept

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON: the options, the fitted statistics and ``kind``."""
        names = [f.name for f in fields(self) if f.repr]
        return {"kind": self.kind, **{name: getattr(self, name) for name in names}}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> BeatFeaturizer:
        """Inverse of :meth:`state_dict`; unknown keys are an error naming them."""
        state = dict(state)
        kind = state.pop("kind", cls.kind)
        if kind != cls.kind:
            raise ValueError(f"not a {cls.kind!r} featurizer state: kind={kind!r}")
        allowed = [f.name for f in fields(cls) if f.repr]
        check_known_keys("BeatFeaturizer state", state, allowed)
        return cls(**state)

    def transform(self, signals: list[Signal]) -> dict[str, np.ndarray]:
        """Whole-record beat sequences ``values`` (N, T, F), ``lengths`` (N,) (see
        :func:`~medseq.features.signals.beat_sequence.record_beat_sequences`)."""
        from medseq.features.signals.beat_sequence import record_beat_sequences

        return record_beat_sequences(self, signals)

    def describe(self) -> Any:
        """The featurizer protocol's description (:func:`~medseq.features.signals.
        beat_sequence.describe_beats`)."""
        from medseq.features.signals.beat_sequence import describe_beats

        return describe_beats(self)

