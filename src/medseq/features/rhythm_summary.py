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

:class:`RhythmBeatFeaturizer` is the :class:`~medseq.features.beat_featurizer.
BeatFeaturizer` plus these summaries, z-scored on the training recordings; its
``summaries`` method gives the ``static`` model input ``(N, S)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from medseq.features import signal as sig
from medseq.features.beat_featurizer import BeatFeaturizer, row_correlation
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
    out = dict.fromkeys(names, float("nan"))
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


def _morphology(raw: np.ndarray, fs: float, peaks: np.ndarray) -> dict[str, float]:
    x = sig.normalize_per_record(sig.bandpass_filter(raw[:, None], fs))[:, 0].astype(np.float64)
    before, after = round(0.25 * fs), round(0.45 * fs)
    keep = peaks[(peaks - before >= 0) & (peaks + after <= len(x))]
    out: dict[str, float] = {}
    if len(keep) < 2:
        return out
    beats = x[keep[:, None] + np.arange(-before, after)[None, :]]  # (n, w)
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


@dataclass
class RhythmBeatFeaturizer(BeatFeaturizer):
    """A :class:`BeatFeaturizer` whose recordings also get the rhythm summaries.

    ``fit_summaries`` stores the median (NaN fill), mean and SD of every summary over the
    training recordings; ``summaries`` returns them z-scored and clipped to +-:data:`CLIP`
    (NaN, e.g. the RR values of a recording with too few beats, becomes 0 = the training
    mean). The state adds ``summary_mean``/``summary_std`` to the beat featurizer's, under
    ``kind = "beats_rhythm"``; the beat-feature cache key is the plain beat featurizer's, so
    one cache serves both.
    """

    kind: ClassVar[str] = "beats_rhythm"

    summary_mean: list[float] | None = None
    summary_std: list[float] | None = None

    @property
    def n_summaries(self) -> int:
        """Size of the static vector."""
        return len(SUMMARY_FEATURES)

    def _options_key(self) -> tuple:
        state = {**self.state_dict(), "kind": BeatFeaturizer.kind}
        skip = ("mean", "std", "summary_mean", "summary_std")
        return tuple((k, v) for k, v in state.items() if k not in skip)

    def raw_summaries(self, signal: Signal) -> np.ndarray:
        """Unscaled :data:`SUMMARY_FEATURES` of ``signal`` (cached like the beat features)."""
        key = (signal.record_id, "rhythm_summary")
        if key not in self._cache:
            self._cache[key] = recording_summaries(
                signal, self.peak_positions(signal), channel=self._lead_index(signal)
            )
        return self._cache[key]

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
