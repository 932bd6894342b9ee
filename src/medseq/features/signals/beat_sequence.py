"""Whole-record inputs for sequence labelling: one step per beat, or per-step beat labels.

Two ways to label every beat of a long record with one recurrent pass:

* **per beat**: :func:`beat_feature_sequence` turns a record into ``(n_beats, F)``, each row
  the beat's waveform (downsampled) followed by its RR-interval features, so that a
  ``ConvRNN(mode="sequence", conv_channels=())`` reads the record beat by beat and the
  recurrence sees the rhythm context (de Chazal et al. 2004 showed RR features carry most of
  the S-beat information; the RNN lets neighbouring beats inform each one).
* **per window**: :func:`step_labels` places each annotated beat's class on the step of a
  raw-signal ``ConvRNN(mode="sequence")`` whose stride block holds its R peak; the other
  steps are unlabelled (NaN), to be masked out of the loss.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from medseq.features.base import ArraySpec, FeaturizerDescription
from medseq.features.signals.beats import beat_segments, rr_features
from medseq.features.signals.signal import pad_batch, resample
from medseq.schema import Signal

logger = logging.getLogger(__name__)


def beat_feature_sequence(
    samples: np.ndarray,
    peaks: np.ndarray,
    fs_hz: float,
    *,
    before_s: float = 0.25,
    after_s: float = 0.45,
    segment_fs_hz: float = 90.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-beat feature vectors ``(n_kept, F)`` in beat order, and the kept peak indices.

    ``F = n_channels * round((before_s + after_s) * segment_fs_hz) + 6``: the window around
    each R peak resampled to ``segment_fs_hz`` (90 Hz keeps the QRS, < 40 Hz content, and
    cuts the input 4x at 360 Hz), then :data:`~medseq.features.signals.beats.RR_FEATURES`. RR
    features are computed on all peaks before edge beats are dropped, so they are the same
    whether or not a neighbour's window fits in the record.
    """
    peaks = np.asarray(peaks, dtype=np.int64)
    rr = rr_features(peaks, fs_hz)
    segments, kept = beat_segments(samples, peaks, fs_hz, before_s=before_s, after_s=after_s)
    if len(kept) == 0:
        raise ValueError(f"no beat window of {before_s + after_s} s fits in the record")
    small = resample(segments.transpose(1, 0, 2), fs_hz, segment_fs_hz).transpose(1, 0, 2)
    flat = small.reshape(len(kept), -1)
    return np.concatenate([flat, rr[kept]], axis=1).astype(np.float32), kept


def step_labels(
    positions: np.ndarray, classes: np.ndarray, n_samples: int, samples_per_step: int
) -> np.ndarray:
    """Class of the beat whose R peak falls in each step; NaN where there is none.

    Returns float32 ``(ceil(n_samples / samples_per_step),)``. Two beats in one step (only
    possible when a step is longer than the shortest RR interval) keep the later one; their
    number is logged so that a too-long step is noticed.
    """
    if samples_per_step < 1:
        raise ValueError(f"samples_per_step must be >= 1, got {samples_per_step}")
    n_steps = -(-n_samples // samples_per_step)
    labels = np.full(n_steps, np.nan, dtype=np.float32)
    steps = np.asarray(positions, dtype=np.int64) // samples_per_step
    inside = (steps >= 0) & (steps < n_steps)
    steps, values = steps[inside], np.asarray(classes)[inside]
    n_shared = len(steps) - len(np.unique(steps))
    if n_shared:
        logger.warning(
            "step_labels: %d beats share a step of %d samples with another beat; "
            "the later one is kept (use a shorter step)",
            n_shared,
            samples_per_step,
        )
    labels[steps] = values
    return labels


def record_beat_sequences(featurizer: Any, signals: list[Signal]) -> dict[str, np.ndarray]:
    """Whole-record beat sequences of a fitted beat featurizer: ``values`` (N, T, F) float32
    z-scored, ``lengths`` (N,) int64 in beats (``BeatFeaturizer.transform``).

    A recording where fewer than three beats were detected (flat or pure-noise traces)
    gets one all-zero beat (the training mean after z-scoring), so it is still predicted;
    their number is logged.
    """
    matrices, n_empty = [], 0
    for signal in signals:
        matrix, _ = featurizer.features(signal)
        if len(matrix) == 0:
            n_empty += 1
            matrix = np.zeros((1, featurizer.n_features), np.float32)
        matrices.append(matrix)
    if n_empty:
        logger.warning("%d recordings without detectable beats get one zero beat", n_empty)
    values, lengths = pad_batch(matrices)
    return {"values": values, "lengths": lengths}


def beat_feature_names(featurizer: Any) -> list[str]:
    """Names of the ``F`` columns of a beat featurizer's matrix: the window samples
    (``window_i``), their deviation from the median beat (``deviation_i``), then
    ``scalar_names``."""
    n = featurizer.segment_length
    windows = {
        "both": [f"window_{i}" for i in range(n)] + [f"deviation_{i}" for i in range(n)],
        "deviation": [f"deviation_{i}" for i in range(n)],
        "none": [],
    }[featurizer.morphology]
    return windows + list(featurizer.scalar_names)


def describe_beats(featurizer: Any) -> FeaturizerDescription:
    """The :class:`~medseq.features.base.FeaturizerDescription` of a fitted beat featurizer."""
    if featurizer.mean is None:
        raise RuntimeError("BeatFeaturizer.describe called before fit")
    names = beat_feature_names(featurizer)
    return FeaturizerDescription(
        kind=featurizer.kind,
        modality="ecg",
        inputs="recordings with R peaks (annotated or detected)",
        outputs=(
            ArraySpec("values", "float32", ("N", "T", "F"), {"F": len(names)}, "z-scored beats"),
            ArraySpec("lengths", "int64", ("N",), {}, "beats before the padding"),
        ),
        feature_names={"F": names},
        step="beat",
    )


def beat_context(
    matrix: np.ndarray, rows: np.ndarray, context_beats: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's beat with up to ``context_beats`` preceding beats, left-aligned.

    Beats near the record start have fewer predecessors and a shorter length (zero padding
    after), so no beat is dropped and none reads a beat of another record.

    Parameters
    ----------
    matrix : ndarray of shape (N, F)
        One record's beat matrix.
    rows : ndarray of shape (B,)
        The beats to read, as row indices of ``matrix``.
    context_beats : int
        ``C``, the preceding beats read with each beat.

    Returns
    -------
    values : ndarray of shape (B, C + 1, F), float32
        Step ``lengths - 1`` is the beat itself (what ``ConvRNN(pooling="last")`` reads out).
    lengths : ndarray of shape (B,), int64
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
