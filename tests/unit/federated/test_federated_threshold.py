"""The federated threshold from pooled per-bin score counts is the runner's threshold on
the pooled scores, to within one bin, and the sites' counts add up to the pooled ones."""

from __future__ import annotations

import numpy as np
import pytest

from medseq.evaluation import select_threshold
from medseq.federated.threshold import (
    N_BINS,
    decode,
    encode,
    score_counts,
    threshold_from_counts,
)


def _scores(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(float)  # a rare outcome, as in-hospital death
    p = 1 / (1 + np.exp(-(rng.normal(-3.0, 1.0, n) + 1.5 * y)))  # all well below 0.5
    return y, p


@pytest.mark.parametrize("method,target", [("youden", None), ("sensitivity", 0.8)])
def test_pooled_counts_give_the_pooled_threshold_to_one_bin(method, target):
    sites = [_scores(seed, n) for seed, n in ((0, 300), (1, 500), (2, 200))]
    counts = sum((decode(encode(score_counts(y, p))) for y, p in sites[1:]),
                 score_counts(*sites[0]))  # fmt: skip
    y = np.concatenate([s[0] for s in sites])
    p = np.concatenate([s[1] for s in sites])
    np.testing.assert_array_equal(counts, score_counts(y, p))
    chosen = threshold_from_counts(counts, method, target)
    # on the scores floored to their bin's lower edge the choice is exact
    floored = np.floor(p * N_BINS) / N_BINS
    assert chosen == pytest.approx(select_threshold(y, floored, method, target), abs=1e-12)
    assert abs(chosen - select_threshold(y, p, method, target)) <= 1.0 / N_BINS + 1e-12
    assert chosen < 0.5 and 0 < (p >= chosen).sum() < len(p)


def test_one_outcome_chooses_nothing_and_bad_counts_are_refused():
    y, p = _scores(0, 100)
    assert threshold_from_counts(score_counts(np.zeros_like(y), p)) is None
    with pytest.raises(ValueError, match="2 rows of counts"):
        decode("[[1, 2, 3]]")
    with pytest.raises(ValueError, match="3 labels for 2 probabilities"):
        score_counts(np.zeros(3), np.zeros(2))
