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

Optional (off by default, so existing configs keep their features exactly), appended after
those, in :func:`scalar_feature_names` order:

* ``qrs_shape``: QRS shape against the record's median beat at the recording's own rate:
  QRS width (10-90 % span of the absolute slope within R +-0.15 s), QRS area and
  peak-to-peak amplitude, each over the median beat's; the RMS of the QRS deviation over
  the median QRS's RMS; the best QRS correlation over shifts of +-50 ms (an R peak marked
  at another fiducial point of a normal beat still matches); and the correlation of the
  P-wave region (R -0.25 .. -0.06 s) with the median beat's (an atrial ectopic beat has an
  unusual P wave);
* ``second_lead``: the template-matching values (and the QRS-shape values with
  ``qrs_shape``) of the record's other channel (V1 in most MIT-BIH records), where a
  ventricular beat differs most; zeros for a single-channel record;
* ``record_relative``: each dissimilarity to the median beat (the deviation RMS values, and
  one minus each correlation) as the log of its ratio to that value's median over the
  record's beats: how unusual a beat is for *this* recording, so that a noisy record
  whose normal beats all deviate from their median (MIT-BIH 108) does not look ventricular;
* ``local_template`` (k > 0): the three template-matching values again, against the median
  of the beat's 2k neighbours (k either side, itself left out) instead of the record's
  median beat, per lead: a record whose normal morphology changes over time (intermittent
  pre-excitation in 230, bundle-branch-block periods in 207) still matches locally;
* ``local_rhythm`` (k > 0): pre- and post-RR over the median of the k RR intervals either
  side, and the spread and irregular share of their successive differences: a premature
  beat in a regular neighbourhood is ectopic, one in an irregular neighbourhood is likely
  atrial fibrillation conducted normally (MIT-BIH 201 and 203 lose most S precision there).

The fitted state is the mean and standard deviation of every column over the training
beats (z-scoring), so the featurizer is fitted on training records only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from medseq.features.signals import beats, peak_cache
from medseq.features.signals import signal as sig
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
#: Per-lead QRS-shape values of ``qrs_shape=True``.
QRS_SHAPE_FEATURES: tuple[str, ...] = (
    "qrs_width_over_median",
    "qrs_area_over_median",
    "qrs_ptp_over_median",
    "qrs_deviation_rms_over_median_rms",
    "qrs_best_shift_correlation",
    "p_wave_correlation_with_median",
)
#: Template-matching values of the second lead (``second_lead=True``).
LEAD2_TEMPLATE_FEATURES: tuple[str, ...] = (
    "lead2_qrs_correlation_with_median",
    "lead2_window_correlation_with_median",
    "lead2_deviation_rms_over_median_rms",
)
#: Dissimilarities that ``record_relative=True`` re-expresses against the record's median
#: (correlations as 1 - r); the values of these names that are present get one column each.
RECORD_RELATIVE_BASES: tuple[str, ...] = (
    "qrs_correlation_with_median",
    "window_correlation_with_median",
    "deviation_rms_over_median_rms",
    "qrs_deviation_rms_over_median_rms",
    "qrs_best_shift_correlation",
    "lead2_qrs_correlation_with_median",
    "lead2_window_correlation_with_median",
    "lead2_deviation_rms_over_median_rms",
    "lead2_qrs_deviation_rms_over_median_rms",
    "lead2_qrs_best_shift_correlation",
)
RELATIVE_EPS = 0.01
#: Template matching against the neighbours' median beat (``local_template > 0``), per lead.
LOCAL_TEMPLATE_FEATURES: tuple[str, ...] = (
    "qrs_correlation_with_local_median",
    "window_correlation_with_local_median",
    "deviation_rms_over_local_median_rms",
)
#: Rhythm around each beat (``local_rhythm > 0``): how premature it is against the median
#: neighbouring RR (robust to a short run of ectopic beats, which moves a mean), and how
#: irregular the neighbourhood is (atrial fibrillation: every beat looks premature).
LOCAL_RHYTHM_FEATURES: tuple[str, ...] = (
    "pre_rr_over_local_median",
    "post_rr_over_local_median",
    "local_drr_mad_over_median",
    "local_irregular_share",
)
#: A successive RR difference larger than this share of the local median RR is irregular.
IRREGULAR_DRR = 0.1
QRS_HALF_S = 0.1
WIDTH_HALF_S = 0.15
SHIFT_S = 0.05
P_WAVE_S = (0.25, 0.06)


def scalar_feature_names(
    *,
    qrs_shape: bool = False,
    second_lead: bool = False,
    record_relative: bool = False,
    local_template: int = 0,
    local_rhythm: int = 0,
) -> list[str]:
    """Names of the per-beat values after the windows, in column order."""
    names = list(SCALAR_FEATURES)
    if qrs_shape:
        names += QRS_SHAPE_FEATURES
    if second_lead:
        names += LEAD2_TEMPLATE_FEATURES
        if qrs_shape:
            names += [f"lead2_{n}" for n in QRS_SHAPE_FEATURES]
    if record_relative:
        names += [f"{n}_vs_record" for n in RECORD_RELATIVE_BASES if n in names]
    if local_template:
        names += LOCAL_TEMPLATE_FEATURES
        if second_lead:
            names += [f"lead2_{n}" for n in LOCAL_TEMPLATE_FEATURES]
    if local_rhythm:
        names += LOCAL_RHYTHM_FEATURES
    return names


def record_relative_values(values: np.ndarray, names: list[str]) -> np.ndarray:
    """``log((d + eps) / (median(d) + eps))`` of each dissimilarity ``d`` over the record.

    ``values`` holds one record's beats (rows) and the columns ``names``; ``d`` is the
    value of a deviation RMS column and ``1 - r`` of a correlation column.
    """
    out = []
    for name in RECORD_RELATIVE_BASES:
        if name not in names:
            continue
        column = values[:, names.index(name)].astype(np.float64)
        d = 1.0 - column if "correlation" in name else column
        d = np.maximum(d, 0.0)
        out.append(np.log((d + RELATIVE_EPS) / (np.median(d) + RELATIVE_EPS)))
    return np.stack(out, axis=1).astype(np.float32)


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
    qrs_shape : bool, default=False
        Add the QRS-shape values against the record's median beat (width, area,
        amplitude, QRS deviation, shift-tolerant correlation, P-wave correlation); needs
        ``before_s`` and ``after_s`` of at least 0.15 s.
    second_lead : bool, default=False
        Add the template-matching (and, with ``qrs_shape``, QRS-shape) values of the
        record's first channel other than ``lead``.
    record_relative : bool, default=False
        Add each dissimilarity to the median beat relative to its median over the record
        (see :func:`record_relative_values`).
    local_template : int, default=0
        When > 0, add template matching against the median of the ``local_template``
        beats either side of each beat (see :func:`local_template_values`).
    local_rhythm : int, default=0
        When > 0, add the rhythm of the ``local_rhythm`` RR intervals either side of each
        beat (see :func:`local_rhythm_values`).

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
    def segment_length(self) -> int:
        """Values per stored beat window."""
        return round((self.before_s + self.after_s) * self.segment_fs_hz)

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
        if self.lead is not None and self.lead in signal.channel_names:
            return signal.channel_names.index(self.lead)
        if self.lead is not None:
            logger.debug(
                "%s: no lead %s; using %s", signal.record_id, self.lead, signal.channel_names[0]
            )
        return 0

    def _lead(self, signal: Signal) -> np.ndarray:
        index = self._lead_index(signal)
        return signal.samples[:, index : index + 1]

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
        lead = self._lead(signal)
        key = peak_cache.peak_key(lead, signal.fs_hz)
        peaks = peak_cache.load_peaks(key)
        if peaks is None:
            x = sig.bandpass_filter(lead, signal.fs_hz, low_hz=5.0, high_hz=25.0)
            peaks = beats.detect_r_peaks(x, signal.fs_hz)
            peak_cache.save_peaks(key, peaks)
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
        segments, kept = self._segments(signal, self._lead(signal), positions)
        small, deviation = self._small(segments, signal.fs_hz)
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
        if self.qrs_shape:
            parts.append(self._qrs_shape_values(segments, signal.fs_hz))
        lead2 = self._second_lead_windows(signal, positions) if self.second_lead else None
        if self.second_lead:
            parts.append(self._second_lead_values(lead2, len(kept), signal))
        if self.record_relative:
            scalars = np.concatenate(parts[MORPHOLOGIES[self.morphology] :], axis=1)
            names = scalar_feature_names(qrs_shape=self.qrs_shape, second_lead=self.second_lead)
            parts.append(record_relative_values(scalars, names))
        if self.local_template:
            parts.append(self._local_values(small))
            if self.second_lead:
                small2 = (
                    np.zeros((len(kept), self.segment_length), np.float32)
                    if lead2 is None
                    else lead2[1]
                )
                parts.append(self._local_values(small2))
        if self.local_rhythm:
            parts.append(local_rhythm_values(positions, self.local_rhythm)[kept])
        matrix = np.concatenate(parts, axis=1).astype(np.float32)
        return matrix, np.asarray(positions, dtype=np.int64)

    def _segments(
        self, signal: Signal, channel: np.ndarray, positions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Band-passed, per-record standardised windows of one channel, edges zero-padded."""
        x = sig.bandpass_filter(channel, signal.fs_hz, low_hz=self.low_hz, high_hz=self.high_hz)
        x = sig.normalize_per_record(x)
        margin = round(max(self.before_s, self.after_s) * signal.fs_hz)
        x = np.pad(x, ((margin, margin), (0, 0)))
        return beats.beat_segments(
            x, positions + margin, signal.fs_hz, before_s=self.before_s, after_s=self.after_s
        )

    def _small(self, segments: np.ndarray, fs_hz: float) -> tuple[np.ndarray, np.ndarray]:
        """Windows at ``segment_fs_hz`` and their deviation from the record's median beat."""
        small = sig.resample(segments[:, :, 0].T, fs_hz, self.segment_fs_hz).T
        small = small[:, : self.segment_length]
        if small.shape[1] < self.segment_length:
            small = np.pad(small, ((0, 0), (0, self.segment_length - small.shape[1])))
        return small, small - np.median(small, axis=0, keepdims=True)

    def _local_values(self, small: np.ndarray) -> np.ndarray:
        r_peak = round(self.before_s * self.segment_fs_hz)
        half = max(1, round(0.1 * self.segment_fs_hz))
        return local_template_values(small, self.local_template, r_index=r_peak, qrs_half=half)

    def _second_lead_windows(
        self, signal: Signal, positions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Full-rate windows, small windows and their deviation from the median beat, of
        the record's first channel other than ``lead``; None for a single-channel record.
        Computed once per record for every second-lead value."""
        primary = self._lead_index(signal)
        others = [k for k in range(signal.samples.shape[1]) if k != primary]
        if not others:
            return None
        channel = signal.samples[:, others[0] : others[0] + 1]
        segments, _ = self._segments(signal, channel, positions)
        return (segments, *self._small(segments, signal.fs_hz))

    def _second_lead_values(
        self, lead2: tuple[np.ndarray, np.ndarray, np.ndarray] | None, n: int, signal: Signal
    ) -> np.ndarray:
        width = len(LEAD2_TEMPLATE_FEATURES) + (len(QRS_SHAPE_FEATURES) if self.qrs_shape else 0)
        if lead2 is None:
            logger.debug("%s: one channel; second-lead values are zero", signal.record_id)
            return np.zeros((n, width), np.float32)
        segments, small, deviation = lead2
        out = [self._shape_summaries(small, deviation)]
        if self.qrs_shape:
            out.append(self._qrs_shape_values(segments, signal.fs_hz))
        return np.concatenate(out, axis=1)

    def _qrs_shape_values(self, segments: np.ndarray, fs_hz: float) -> np.ndarray:
        """:data:`QRS_SHAPE_FEATURES` of full-rate windows ``(n, L, 1)``."""
        return qrs_shape_values(segments[:, :, 0], fs_hz, r_index=round(self.before_s * fs_hz))

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


def row_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of ``a`` (n, m) with ``b`` (m,) or (n, m); 0 if flat."""
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    return np.where(den > 0, (a * b).sum(axis=-1) / np.maximum(den, 1e-12), 0.0)


def _ratio(values: np.ndarray, reference: float) -> np.ndarray:
    return values / reference if reference > 1e-9 else np.ones_like(values)


def slope_width(windows: np.ndarray, fs_hz: float) -> np.ndarray:
    """Seconds between 10 % and 90 % of the cumulative absolute slope of each row."""
    slope = np.abs(np.diff(windows, axis=-1))
    total = slope.sum(axis=-1, keepdims=True)
    cumulative = np.cumsum(slope, axis=-1) / np.maximum(total, 1e-12)
    start = (cumulative < 0.1).sum(axis=-1)
    stop = (cumulative < 0.9).sum(axis=-1)
    return np.where(total[..., 0] > 0, (stop - start) / fs_hz, 0.0)


def local_template_values(small: np.ndarray, k: int, *, r_index: int, qrs_half: int) -> np.ndarray:
    """:data:`LOCAL_TEMPLATE_FEATURES` of windows ``small`` (n, L) against their neighbours.

    Each beat's template is the median of the ``k`` windows before and ``k`` after it (fewer
    at the record edges, the beat itself left out); the QRS is ``r_index +- qrs_half``.
    """
    small = np.asarray(small, dtype=np.float64)
    n = len(small)
    if n < 2:
        return np.zeros((n, 3), np.float32)
    templates = np.empty_like(small)
    for i in range(n):
        lo, hi = max(0, i - k), min(n, i + k + 1)
        neighbours = np.concatenate([small[lo:i], small[i + 1 : hi]])
        templates[i] = np.median(neighbours, axis=0)
    qrs = slice(max(0, r_index - qrs_half), r_index + qrs_half + 1)
    rms = np.sqrt((templates**2).mean(axis=1))
    deviation = np.sqrt(((small - templates) ** 2).mean(axis=1))
    ratio = np.where(rms > 1e-9, deviation / np.maximum(rms, 1e-9), 0.0)
    qrs_corr = row_correlation(small[:, qrs], templates[:, qrs])
    return np.stack([qrs_corr, row_correlation(small, templates), ratio], axis=1).astype(np.float32)


def local_rhythm_values(peaks: np.ndarray, k: int) -> np.ndarray:
    """:data:`LOCAL_RHYTHM_FEATURES` of every beat of ``peaks`` (n,) -> (n, 4).

    The neighbourhood of beat i is its ``k`` RR intervals either side (fewer at the record
    edges). Pre- and post-RR are divided by their median; the spread is the median absolute
    successive difference over that median, and the irregular share is the share of
    successive differences above :data:`IRREGULAR_DRR` of it. The first beat's pre-RR is
    its post-RR and the last beat's post-RR its pre-RR, as in :func:`beats.rr_features`.
    """
    peaks = np.asarray(peaks, dtype=np.float64)
    n = len(peaks)
    if n < 3:
        return np.zeros((n, len(LOCAL_RHYTHM_FEATURES)), np.float32)
    rr = np.diff(peaks)  # rr[j] lies between beats j and j + 1
    pre = np.concatenate([rr[:1], rr])
    post = np.concatenate([rr, rr[-1:]])
    out = np.empty((n, len(LOCAL_RHYTHM_FEATURES)))
    for i in range(n):
        around = rr[max(0, i - k) : min(len(rr), i + k)]
        median = float(np.median(around))
        steps = np.abs(np.diff(around)) / median if len(around) > 1 else np.zeros(1)
        out[i] = (
            pre[i] / median,
            post[i] / median,
            np.median(steps),
            np.mean(steps > IRREGULAR_DRR),
        )
    return out.astype(np.float32)


def qrs_shape_values(windows: np.ndarray, fs_hz: float, *, r_index: int) -> np.ndarray:
    """:data:`QRS_SHAPE_FEATURES` of beats ``windows`` (n, L) against their median beat.

    ``r_index`` is the R peak's position in each window. Each beat's baseline is its own
    median over the window. Width, area and amplitude are divided by the median beat's, so
    a value of 1 means "as this patient's usual beat" whatever the lead or the patient.
    """
    windows = np.asarray(windows, dtype=np.float64)
    windows = windows - np.median(windows, axis=1, keepdims=True)
    median = np.median(windows, axis=0)
    length = windows.shape[1]

    def span(half_s: float) -> slice:
        half = max(1, round(half_s * fs_hz))
        return slice(max(0, r_index - half), min(length, r_index + half + 1))

    qrs, wide = span(QRS_HALF_S), span(WIDTH_HALF_S)
    width = _ratio(slope_width(windows[:, wide], fs_hz), float(slope_width(median[wide], fs_hz)))
    area = _ratio(np.abs(windows[:, qrs]).sum(axis=1), float(np.abs(median[qrs]).sum()))
    ptp = _ratio(np.ptp(windows[:, qrs], axis=1), float(np.ptp(median[qrs])))
    deviation_rms = np.sqrt(((windows[:, qrs] - median[qrs]) ** 2).mean(axis=1))
    median_rms = float(np.sqrt((median[qrs] ** 2).mean()))
    deviation = deviation_rms / median_rms if median_rms > 1e-9 else np.zeros_like(deviation_rms)
    room = min(round(SHIFT_S * fs_hz), qrs.start, length - qrs.stop)
    best = np.full(len(windows), -1.0)
    for shift in range(-room, room + 1):
        shifted = windows[:, qrs.start + shift : qrs.stop + shift]
        best = np.maximum(best, row_correlation(shifted, median[qrs]))
    p_start = max(0, r_index - round(P_WAVE_S[0] * fs_hz))
    p_stop = max(p_start + 2, r_index - round(P_WAVE_S[1] * fs_hz))
    p_wave = row_correlation(windows[:, p_start:p_stop], median[p_start:p_stop])
    return np.stack([width, area, ptp, deviation, best, p_wave], axis=1).astype(np.float32)


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
