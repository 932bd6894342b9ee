"""``BeatFeaturizer``: a recording as a sequence of beats, each a vector of shape and rhythm.

Per beat (R peaks from the reference annotations or detected with ``wfdb``'s XQRS):

* the waveform around the R peak (``before_s`` .. ``after_s``) resampled to
  ``segment_fs_hz``, after a band-pass and per-record robust standardisation;
* the same window minus the record's median beat, so that what is *unusual for this
  patient* stands out whatever the patient's normal morphology (inter-patient evaluation
  punishes features that memorise a patient's QRS shape);
* RR intervals (de Chazal et al. 2004): pre-RR, post-RR and the local RR divided by the
  record's own mean RR, pre- and post-RR divided by the local RR (a premature S beat has
  a short pre-RR relative to its neighbours at any heart rate), the mean RR in seconds
  (the heart rate) and the pre-RR in seconds;
* three shape summaries against the record's median beat: the correlation over the QRS
  (R peak +-0.1 s) and over the whole window, and the RMS of the deviation relative to the
  median beat's RMS (template matching: a ventricular beat is wide and unlike the
  patient's usual beat, a supraventricular one is like it but early).

The fitted state is the mean and standard deviation of every column over the training
beats (z-scoring), so the featurizer is fitted on training records only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from medseq.features import beats
from medseq.features import signal as sig
from medseq.schema import DataError, Signal, check_known_keys

logger = logging.getLogger(__name__)

PEAK_SOURCES = ("annotations", "xqrs")
MORPHOLOGIES = {"both": 2, "deviation": 1, "none": 0}
#: The per-beat values after the windows: rhythm (RR) and template-matching summaries.
SCALAR_FEATURES: tuple[str, ...] = (
    "pre_rr_over_mean",
    "post_rr_over_mean",
    "local_rr_over_mean",
    "pre_rr_over_local",
    "post_rr_over_local",
    "mean_rr_s",
    "pre_rr_s",
    "post_minus_pre_over_mean",
    "qrs_correlation_with_median",
    "window_correlation_with_median",
    "deviation_rms_over_median_rms",
)


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
        Keep the RR ratios to the local RR (``local_rr_over_mean``, ``pre_rr_over_local``,
        ``post_rr_over_local``); a run of ectopic beats shortens the local RR itself, so
        these hide the prematurity that the ratios to the record's mean RR show. ``False``
        sets them to zero (the columns stay, so the width does not change).
    context_beats : int, default=0
        For per-beat samples (MIT-BIH): how many preceding beats are read with each beat
        (see :func:`beat_context`); unused for whole-record sequences.

    Beats near the record edges get a zero-padded window (zero is the baseline after the
    per-record standardisation), so every peak has a row and no labelled beat is dropped.
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

    @property
    def segment_length(self) -> int:
        """Values per stored beat window."""
        return round((self.before_s + self.after_s) * self.segment_fs_hz)

    @property
    def n_features(self) -> int:
        """Columns of a beat matrix: window, window minus median beat, rhythm features."""
        return MORPHOLOGIES[self.morphology] * self.segment_length + len(SCALAR_FEATURES)

    def _options_key(self) -> tuple:
        state = self.state_dict()
        return tuple((k, v) for k, v in state.items() if k not in ("mean", "std"))

    def _lead(self, signal: Signal) -> np.ndarray:
        index = 0
        if self.lead is not None and self.lead in signal.channel_names:
            index = signal.channel_names.index(self.lead)
        elif self.lead is not None:
            logger.debug(
                "%s: no lead %s; using %s", signal.record_id, self.lead, signal.channel_names[0]
            )
        return signal.samples[:, index : index + 1]

    def peak_positions(self, signal: Signal) -> np.ndarray:
        """R-peak sample positions of ``signal`` from its annotations or XQRS.

        XQRS detections are remembered by record id (``detected_peaks``, not part of the
        state), so one featurizer reused across folds or option sets detects each
        recording once.
        """
        if self.peaks == "annotations":
            positions, _ = beats.beat_annotations(signal)
            if len(positions) == 0:
                raise DataError(f"{signal.record_id}: no beat annotations (use peaks='xqrs')")
            return positions
        known = self.detected_peaks.get(signal.record_id)
        if known is not None:
            return known
        x = sig.bandpass_filter(self._lead(signal), signal.fs_hz, low_hz=5.0, high_hz=25.0)
        peaks = beats.detect_r_peaks(x, signal.fs_hz)
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
        empty = (np.zeros((0, self.n_features), np.float32), np.asarray(positions, np.int64))
        if len(positions) < 3:
            logger.warning("%s: %d R peaks; no beat features", signal.record_id, len(positions))
            return empty
        x = sig.bandpass_filter(
            self._lead(signal), signal.fs_hz, low_hz=self.low_hz, high_hz=self.high_hz
        )
        x = sig.normalize_per_record(x)
        margin = round(max(self.before_s, self.after_s) * signal.fs_hz)
        x = np.pad(x, ((margin, margin), (0, 0)))
        segments, kept = beats.beat_segments(
            x, positions + margin, signal.fs_hz, before_s=self.before_s, after_s=self.after_s
        )
        small = sig.resample(segments[:, :, 0].T, signal.fs_hz, self.segment_fs_hz).T
        small = small[:, : self.segment_length]
        if small.shape[1] < self.segment_length:
            small = np.pad(small, ((0, 0), (0, self.segment_length - small.shape[1])))
        deviation = small - np.median(small, axis=0, keepdims=True)
        rr = beats.rr_features(positions, signal.fs_hz, local_beats=self.local_beats)[kept]
        pre, post, local, mean = rr[:, 0], rr[:, 1], rr[:, 2], rr[:, 3]
        rhythm = np.stack(
            [
                pre / mean,
                post / mean,
                local / mean,
                rr[:, 4],
                rr[:, 5],
                mean,
                pre,
                (post - pre) / mean,
            ],
            axis=1,
        )
        if not self.local_ratios:
            rhythm[:, 2:5] = 0.0
        rhythm = np.concatenate([rhythm, self._shape_summaries(small, deviation)], axis=1)
        parts = {
            "both": [small, deviation, rhythm],
            "deviation": [deviation, rhythm],
            "none": [rhythm],
        }[self.morphology]
        matrix = np.concatenate(parts, axis=1).astype(np.float32)
        return matrix, np.asarray(positions, dtype=np.int64)

    def _shape_summaries(self, small: np.ndarray, deviation: np.ndarray) -> np.ndarray:
        median = small - deviation  # the record's median beat, on every row
        r_peak = round(self.before_s * self.segment_fs_hz)
        half = max(1, round(0.1 * self.segment_fs_hz))
        qrs = slice(max(0, r_peak - half), r_peak + half + 1)

        def correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            a = a - a.mean(axis=1, keepdims=True)
            b = b - b.mean(axis=1, keepdims=True)
            den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
            return np.where(den > 0, (a * b).sum(axis=1) / np.maximum(den, 1e-12), 0.0)

        rms_median = np.sqrt((median[0] ** 2).mean())
        rms_dev = np.sqrt((deviation**2).mean(axis=1))
        ratio = rms_dev / rms_median if rms_median > 0 else np.zeros_like(rms_dev)
        return np.stack(
            [correlation(small[:, qrs], median[:, qrs]), correlation(small, median), ratio], axis=1
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


def beat_context(
    matrix: np.ndarray, rows: np.ndarray, context_beats: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's beat with up to ``context_beats`` preceding beats, left-aligned.

    Returns ``values`` ``(len(rows), context_beats + 1, F)`` whose step ``lengths - 1`` is
    the beat itself (what ``ConvRNN(pooling="last")`` reads out), and ``lengths``. Beats
    near the record start have fewer predecessors and a shorter length (zero padding after).
    """
    rows = np.asarray(rows, dtype=np.int64)
    width = context_beats + 1
    first = np.maximum(rows - context_beats, 0)
    lengths = rows - first + 1
    offsets = np.arange(width)[None, :]
    index = np.minimum(first[:, None] + offsets, rows[:, None])
    values = matrix[index]
    values[offsets >= lengths[:, None]] = 0.0
    return values.astype(np.float32), lengths.astype(np.int64)
