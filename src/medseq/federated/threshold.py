"""The decision threshold of a federated binary model, chosen on the sites' validation.

The centralised runner picks the bundle's threshold on validation predictions
(:func:`medseq.evaluation.select_threshold`, Youden's J by default); a federated run
must too, or its bundle keeps 0.5, which a model of a rare outcome (in-hospital death on
eICU) never reaches. The sites never send their predictions: each sends, with the
validation AUROC it already computes for round selection, how many of its negatives and
positives score in each of :data:`N_BINS` equal bins of [0, 1]. The server sums them and
picks the threshold on the pooled counts as the runner would on the pooled predictions,
to within one bin (1 / N_BINS): the threshold is a bin's lower edge, so every sample the
counts put at or above it scores at or above it.
"""

from __future__ import annotations

import json
import logging

import numpy as np

logger = logging.getLogger(__name__)

#: Bins of [0, 1] the validation scores are counted in (threshold resolution 0.001).
N_BINS = 1000


def score_counts(y: np.ndarray, prob: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Counts of shape (2, n_bins): row 0 the negatives, row 1 the positives per score bin.

    Unlabelled samples (NaN ``y``) are left out.
    """
    y, prob = np.asarray(y, dtype=np.float64).ravel(), np.asarray(prob, np.float64).ravel()
    if y.shape != prob.shape:
        raise ValueError(f"score_counts: {len(y)} labels for {len(prob)} probabilities")
    seen = np.isfinite(y) & np.isfinite(prob)
    bins = np.clip((prob[seen] * n_bins).astype(np.int64), 0, n_bins - 1)
    out = np.zeros((2, n_bins), dtype=np.int64)
    np.add.at(out, (y[seen].astype(np.int64), bins), 1)
    return out


def encode(counts: np.ndarray) -> str:
    """``counts`` as a JSON string: a Flower metric value (scalars and strings only)."""
    return json.dumps(np.asarray(counts).tolist())


def decode(text: str) -> np.ndarray:
    """The counts a site sent (:func:`encode`); a clear error on anything else."""
    counts = np.asarray(json.loads(text), dtype=np.int64)
    if counts.ndim != 2 or counts.shape[0] != 2 or (counts < 0).any():
        raise ValueError(f"validation score counts must be 2 rows of counts, got {counts.shape}")
    return counts


def threshold_from_counts(
    counts: np.ndarray, method: str = "youden", target: float | None = None
) -> float | None:
    """The threshold ``method`` picks on the pooled counts, or None when the pooled
    validation does not hold both outcomes (nothing to choose on)."""
    from medseq.evaluation import select_threshold

    counts = np.asarray(counts, dtype=np.int64)
    if counts.sum(axis=1).min() == 0:
        logger.warning("the sites' validation holds one outcome only: no threshold chosen")
        return None
    edges = np.arange(counts.shape[1]) / counts.shape[1]  # each bin's lower edge
    y = np.repeat([0.0, 1.0], counts.sum(axis=1))
    p = np.concatenate([np.repeat(edges, counts[0]), np.repeat(edges, counts[1])])
    return float(select_threshold(y, p, method=method, target=target))
