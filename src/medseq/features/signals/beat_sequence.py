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

import numpy as np

from medseq.features.signals.beats import beat_segments, rr_features
from medseq.features.signals.signal import resample

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
