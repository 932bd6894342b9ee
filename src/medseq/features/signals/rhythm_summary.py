"""Record-level rhythm summaries of an ECG, for fusion into a beat-sequence model's head.

A beat-by-beat recurrent model sees the rhythm only through what its recurrence keeps; the
classical AF-challenge features summarise a whole recording in a few numbers (Clifford et
al. 2017; Datta et al. 2017, Zabihi et al. 2017 used hundreds of them). This module
computes a fixed vector of them from the R peaks and the signal of one recording:

* heart-rate variability of the RR series: mean and median RR, SD and coefficient of
  variation, RMSSD over the mean RR, pNN20 and pNN50, IQR and MAD of the successive
  differences over the median RR, the Poincare SD1/SD2 ratio, the Shannon entropy of the RR
  histogram (RR over the median RR in bins of 0.05), a sample-entropy-like irregularity (the
  share of successive-difference triplets that do not repeat within 10 % of the median
  RR), the turning-point ratio, the shares of premature (< 0.85 local median) and
  prolonged (> 1.15) intervals, the longest and shortest RR over the median;
* beat-shape variability against the recording's median beat: mean and SD of the
  correlation with it, the share of beats with correlation < 0.8, the mean deviation RMS;
* signal quality: the share of implausible RR (< 0.25 s or > 2 s), the kurtosis of the
  filtered trace, the high-frequency (> 40 Hz) and low-frequency (< 0.5 Hz) power shares of
  the raw trace, the SD of the R amplitudes over their median, the beats per second;
* P-wave evidence: the median beat's energy 0.25-0.12 s before R over its QRS energy, and
  how consistent that segment is across beats (energy of the average over the average
  energy: a regular P wave adds up, fibrillatory waves cancel);
* the recording length and a flag for recordings with fewer than :data:`MIN_BEATS` beats
  (their other values are NaN and become 0, the training mean, after z-scoring).

With ``beat_morphology=True`` the :data:`BEAT_MORPHOLOGY_FEATURES` of the recording's
median beat are appended (:func:`median_beat_summaries`): the absolute intervals and
amplitudes a cardiologist reads off a normal beat (QRS width, QRS polarity, ST level,
T-wave amplitude and delay, P-wave amplitude and delay) and how often a beat is wider than
that median. The "other rhythm" class of CinC 2017 holds bundle-branch blocks, ectopy,
AV block and repolarisation changes, which show there and not in the RR series.

:class:`RhythmBeatFeaturizer` is the :class:`~medseq.features.signals.beat_featurizer.
BeatFeaturizer` plus these summaries, z-scored on the training recordings; its
``summaries`` method gives the ``static`` model input ``(N, S)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from medseq.features.base import ArraySpec, FeaturizerDescription
from medseq.features.signals import signal as sig
from medseq.features.signals.beat_featurizer import BeatFeaturizer
from medseq.features.signals.beat_template import row_correlation
from medseq.features.signals.qrs_shape import slope_width
from medseq.schema import Signal

logger = logging.getLogger(__name__)

#: Fewer R peaks than this: no rhythm statistics (NaN) and ``few_beats`` = 1.
MIN_BEATS = 4

SUMMARY_FEATURES: tuple[str, ...] = (
    "mean_rr_s",
    "median_rr_s",
    "sd_rr_s",
    "cv_rr",
    "rmssd_over_mean",
    "pnn20",
    "pnn50",
    "iqr_drr_over_median",
    "mad_drr_over_median",
    "sd1_over_sd2",
    "rr_histogram_entropy",
    "irregularity",
    "turning_point_ratio",
    "premature_share",
    "prolonged_share",
    "max_rr_over_median",
    "min_rr_over_median",
    "corr_mean",
    "corr_sd",
    "unlike_median_share",
    "deviation_rms",
    "implausible_rr_share",
    "kurtosis",
    "high_freq_share",
    "low_freq_share",
    "r_amplitude_cv",
    "beats_per_second",
    "p_energy_over_qrs",
    "p_consistency",
    "duration_s",
    "few_beats",
)
#: Median-beat intervals and amplitudes (``beat_morphology=True``), amplitudes over the
#: median beat's QRS peak-to-peak, times in seconds from the R peak.
BEAT_MORPHOLOGY_FEATURES: tuple[str, ...] = (
    "qrs_width_s",
    "qrs_width_cv",
    "wide_beat_share",
    "qrs_polarity",
    "qrs_ptp",
    "st_over_qrs",
    "t_over_qrs",
    "t_delay_s",
    "t_delay_over_sqrt_rr",
    "p_over_qrs",
    "p_delay_s",
)
#: A beat whose QRS is this much wider than the median beat's counts as wide.
WIDE_BEAT_RATIO = 1.25
#: Summaries clipped to this many training SDs after z-scoring.
CLIP = 6.0


def _entropy(values: np.ndarray, width: float) -> float:
    bins = np.floor(values / width).astype(np.int64)
    _, counts = np.unique(bins, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def rr_summaries(rr_s: np.ndarray) -> dict[str, float]:
    """Heart-rate-variability values of an RR series in seconds (NaN when too short)."""
    rr = np.asarray(rr_s, dtype=np.float64)
    rr = rr[np.isfinite(rr) & (rr > 0)]
    names = (*SUMMARY_FEATURES[:17], "implausible_rr_share")
    out: dict[str, Any] = dict.fromkeys(names, float("nan"))  # floats and numpy floats
    if len(rr) < MIN_BEATS - 1:
        return out
    mean, median = rr.mean(), float(np.median(rr))
    d = np.diff(rr)
    out.update(
        mean_rr_s=mean,
        median_rr_s=median,
        sd_rr_s=rr.std(),
        cv_rr=rr.std() / mean,
        rmssd_over_mean=np.sqrt(np.mean(d**2)) / mean,
        pnn20=np.mean(np.abs(d) > 0.02),
        pnn50=np.mean(np.abs(d) > 0.05),
        iqr_drr_over_median=float(np.subtract(*np.percentile(d, [75, 25]))) / median,
        mad_drr_over_median=float(np.median(np.abs(d - np.median(d)))) / median,
        rr_histogram_entropy=_entropy(rr / median, 0.05),
        max_rr_over_median=rr.max() / median,
        min_rr_over_median=rr.min() / median,
        implausible_rr_share=np.mean((rr < 0.25) | (rr > 2.0)),
    )
    sd1 = np.std(d) / np.sqrt(2.0)
    sd2_sq = 2.0 * rr.var() - sd1**2
    out["sd1_over_sd2"] = sd1 / np.sqrt(sd2_sq) if sd2_sq > 1e-12 else 0.0
    # irregularity: share of successive-difference pairs with no close match elsewhere
    if len(d) >= 3:
        pairs = np.stack([d[:-1], d[1:]], axis=1)
        far = np.abs(pairs[:, None, :] - pairs[None, :, :]).max(axis=2) > 0.1 * median
        np.fill_diagonal(far, True)
        out["irregularity"] = float(far.all(axis=1).mean())
        turning = (d[:-1] * d[1:]) < 0
        out["turning_point_ratio"] = float(turning.mean())
    else:
        out["irregularity"] = 0.0
        out["turning_point_ratio"] = 0.0
    k = 5
    padded = np.pad(rr, k, mode="edge")
    local = np.array([np.median(padded[i : i + 2 * k + 1]) for i in range(len(rr))])
    out["premature_share"] = float(np.mean(rr < 0.85 * local))
    out["prolonged_share"] = float(np.mean(rr > 1.15 * local))
    return {k_: float(v) for k_, v in out.items()}


def recording_summaries(signal: Signal, peaks: np.ndarray, *, channel: int = 0) -> np.ndarray:
    """The :data:`SUMMARY_FEATURES` of one recording (float64; NaN where undefined)."""
    fs = float(signal.fs_hz)
    raw = np.asarray(signal.samples[:, channel], dtype=np.float64)
    peaks = np.asarray(peaks, dtype=np.int64)
    duration = len(raw) / fs
    out = dict.fromkeys(SUMMARY_FEATURES, float("nan"))
    out["duration_s"] = duration
    out["beats_per_second"] = len(peaks) / duration if duration > 0 else 0.0
    out["few_beats"] = float(len(peaks) < MIN_BEATS)
    out.update(_quality(raw, fs))
    if len(peaks) >= MIN_BEATS:
        out.update(rr_summaries(np.diff(peaks) / fs))
        out.update(_morphology(raw, fs, peaks))
    return np.array([out[name] for name in SUMMARY_FEATURES], dtype=np.float64)


def _quality(raw: np.ndarray, fs: float) -> dict[str, float]:
    out = {}
    if len(raw) < 16 or not np.isfinite(raw).all() or raw.std() == 0:
        return {"kurtosis": 0.0, "high_freq_share": 0.0, "low_freq_share": 0.0}
    x = sig.bandpass_filter(raw[:, None], fs)[:, 0]
    z = (x - x.mean()) / max(x.std(), 1e-12)
    out["kurtosis"] = float(np.log1p(max(np.mean(z**4), 0.0)))
    spectrum = np.abs(np.fft.rfft(raw - raw.mean())) ** 2
    freqs = np.fft.rfftfreq(len(raw), 1.0 / fs)
    total = max(spectrum.sum(), 1e-12)
    out["high_freq_share"] = float(spectrum[freqs > 40.0].sum() / total)
    out["low_freq_share"] = float(spectrum[freqs < 0.5].sum() / total)
    return out


def _beat_windows(raw: np.ndarray, fs: float, peaks: np.ndarray) -> tuple[np.ndarray, int]:
    """Filtered, standardised beats R -0.25..+0.45 s ``(n, w)`` (whole windows only) and
    the R peak's index in a window."""
    x = sig.normalize_per_record(sig.bandpass_filter(raw[:, None], fs))[:, 0].astype(np.float64)
    before, after = round(0.25 * fs), round(0.45 * fs)
    keep = peaks[(peaks - before >= 0) & (peaks + after <= len(x))]
    return x[keep[:, None] + np.arange(-before, after)[None, :]], before


def _morphology(raw: np.ndarray, fs: float, peaks: np.ndarray) -> dict[str, float]:
    beats, before = _beat_windows(raw, fs, peaks)
    out: dict[str, float] = {}
    if len(beats) < 2:
        return out
    median = np.median(beats, axis=0)
    corr = row_correlation(beats, median)
    out["corr_mean"] = float(corr.mean())
    out["corr_sd"] = float(corr.std())
    out["unlike_median_share"] = float(np.mean(corr < 0.8))
    scale = max(np.sqrt(np.mean(median**2)), 1e-6)
    out["deviation_rms"] = float(np.sqrt(np.mean((beats - median) ** 2)) / scale)
    amplitude = np.abs(beats[:, before])
    out["r_amplitude_cv"] = float(amplitude.std() / max(np.median(amplitude), 1e-6))
    p = slice(0, before - round(0.12 * fs))
    qrs = slice(before - round(0.05 * fs), before + round(0.05 * fs))
    p_beats = beats[:, p] - beats[:, p].mean(axis=1, keepdims=True)
    p_median = median[p] - median[p].mean()
    qrs_energy = max(np.mean((median[qrs] - median[qrs].mean()) ** 2), 1e-9)
    out["p_energy_over_qrs"] = float(np.mean(p_median**2) / qrs_energy)
    mean_energy = max(np.mean(p_beats**2), 1e-9)
    out["p_consistency"] = float(np.mean(p_beats.mean(axis=0) ** 2) / mean_energy)
    return out


def median_beat_summaries(signal: Signal, peaks: np.ndarray, *, channel: int = 0) -> np.ndarray:
    """The :data:`BEAT_MORPHOLOGY_FEATURES` of one recording (NaN when under 2 whole beats).

    The median of the filtered, standardised beats is referred to its PR segment
    (R -0.10..-0.06 s); QRS = R +-0.10 s, ST = R +0.06..+0.10 s, T = the largest deviation
    in R +0.15..+0.45 s, P = the largest in R -0.25..-0.08 s (signed, over the QRS
    peak-to-peak). QRS widths are the 10-90 % span of the absolute slope within R +-0.15 s,
    of the median beat and of every beat.
    """
    fs = float(signal.fs_hz)
    raw = np.asarray(signal.samples[:, channel], dtype=np.float64)
    out = dict.fromkeys(BEAT_MORPHOLOGY_FEATURES, float("nan"))
    peaks = np.asarray(peaks, dtype=np.int64)
    beats, r = _beat_windows(raw, fs, peaks) if len(peaks) >= 2 else (np.zeros((0, 1)), 0)
    if len(beats) < 2:
        return np.array([out[n] for n in BEAT_MORPHOLOGY_FEATURES], dtype=np.float64)

    def at(start_s: float, stop_s: float) -> slice:
        return slice(r + round(start_s * fs), r + round(stop_s * fs) + 1)

    median = np.median(beats, axis=0)
    median = median - median[at(-0.10, -0.06)].mean()
    qrs = median[at(-0.10, 0.10)]
    ptp = max(float(np.ptp(qrs)), 1e-6)
    width = float(slope_width(median[at(-0.15, 0.15)], fs))
    widths = slope_width(beats[:, at(-0.15, 0.15)], fs)
    t_part, p_part = median[at(0.15, 0.45)], median[at(-0.25, -0.08)]
    t_index, p_index = int(np.argmax(np.abs(t_part))), int(np.argmax(np.abs(p_part)))
    t_delay = 0.15 + t_index / fs
    median_rr = float(np.median(np.diff(peaks))) / fs
    out.update(
        qrs_width_s=width,
        qrs_width_cv=float(widths.std() / max(widths.mean(), 1e-6)),
        wide_beat_share=float(np.mean(widths > WIDE_BEAT_RATIO * width)) if width > 0 else 0.0,
        qrs_polarity=float((qrs.max() + qrs.min()) / ptp),
        qrs_ptp=ptp,
        st_over_qrs=float(median[at(0.06, 0.10)].mean() / ptp),
        t_over_qrs=float(t_part[t_index] / ptp),
        t_delay_s=t_delay,
        t_delay_over_sqrt_rr=t_delay / np.sqrt(median_rr) if median_rr > 0 else float("nan"),
        p_over_qrs=float(p_part[p_index] / ptp),
        p_delay_s=0.25 - p_index / fs,
    )
    return np.array([out[n] for n in BEAT_MORPHOLOGY_FEATURES], dtype=np.float64)


@dataclass
class RhythmBeatFeaturizer(BeatFeaturizer):
    """A :class:`BeatFeaturizer` whose recordings also get the rhythm summaries.

    ``fit_summaries`` stores the median (NaN fill), mean and SD of every summary over the
    training recordings; ``summaries`` returns them z-scored and clipped to +-:data:`CLIP`
    (NaN, e.g. the RR values of a recording with too few beats, becomes 0 = the training
    mean). The state adds ``summary_mean``/``summary_std`` to the beat featurizer's, under
    ``kind = "beats_rhythm"``; the beat-feature cache key is the plain beat featurizer's, so
    one cache serves both. ``beat_morphology=True`` appends the
    :data:`BEAT_MORPHOLOGY_FEATURES` (default off: the 31 summaries of earlier bundles).
    """

    kind: ClassVar[str] = "beats_rhythm"

    beat_morphology: bool = False
    summary_mean: list[float] | None = None
    summary_std: list[float] | None = None

    @property
    def summary_names(self) -> tuple[str, ...]:
        """Names of the static vector's values, in order."""
        extra = BEAT_MORPHOLOGY_FEATURES if self.beat_morphology else ()
        return (*SUMMARY_FEATURES, *extra)

    @property
    def n_summaries(self) -> int:
        """Size of the static vector."""
        return len(self.summary_names)

    def _options_key(self) -> tuple:
        state = {**self.state_dict(), "kind": BeatFeaturizer.kind}
        skip = ("mean", "std", "summary_mean", "summary_std", "beat_morphology")
        return tuple((k, v) for k, v in state.items() if k not in skip)

    def raw_summaries(self, signal: Signal) -> np.ndarray:
        """Unscaled summaries (:attr:`summary_names`) of ``signal``, cached per recording."""
        key = (signal.record_id, "rhythm_summary")
        if key not in self._cache:
            self._cache[key] = recording_summaries(
                signal, self.peak_positions(signal), channel=self._lead_index(signal)
            )
        if not self.beat_morphology:
            return self._cache[key]
        morph_key = (signal.record_id, "beat_morphology_summary")
        if morph_key not in self._cache:
            self._cache[morph_key] = median_beat_summaries(
                signal, self.peak_positions(signal), channel=self._lead_index(signal)
            )
        return np.concatenate([self._cache[key], self._cache[morph_key]])

    def fit_summaries(self, signals: list[Signal]) -> RhythmBeatFeaturizer:
        """Mean and SD of each summary over the training recordings (NaN ignored)."""
        table = np.stack([self.raw_summaries(s) for s in signals])
        if len(table) < 2:
            raise ValueError("RhythmBeatFeaturizer.fit_summaries needs at least two recordings")
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(np.where(np.isfinite(table), table, np.nan), axis=0)
            std = np.nanstd(np.where(np.isfinite(table), table, np.nan), axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > 1e-9), std, 1.0)
        self.summary_mean = mean.astype(float).tolist()
        self.summary_std = std.astype(float).tolist()
        return self

    def summaries(self, signals: list[Signal]) -> np.ndarray:
        """Z-scored summaries ``(N, S)`` float32 of ``signals``."""
        if self.summary_mean is None or self.summary_std is None:
            raise RuntimeError("RhythmBeatFeaturizer.summaries used before fit_summaries")
        if not signals:
            return np.zeros((0, self.n_summaries), np.float32)
        table = np.stack([self.raw_summaries(s) for s in signals])
        z = (table - np.asarray(self.summary_mean)) / np.asarray(self.summary_std)
        z = np.where(np.isfinite(z), z, 0.0)
        return np.clip(z, -CLIP, CLIP).astype(np.float32)

    def transform(self, signals: list[Signal]) -> dict[str, np.ndarray]:
        """The beat sequences and ``static``, the z-scored summaries ``(N, S)``."""
        return {**super().transform(signals), "static": self.summaries(signals)}

    def describe(self) -> FeaturizerDescription:
        """The beat featurizer's description plus ``static`` (N, S) and its names."""
        beats = super().describe()
        static = ArraySpec(
            "static", "float32", ("N", "S"), {"S": self.n_summaries}, "z-scored summaries"
        )
        return replace(
            beats,
            outputs=(*beats.outputs, static),
            feature_names={**beats.feature_names, "S": list(self.summary_names)},
        )
