"""Drift statistics on binned counts, in numpy and ``math`` only (no scipy in the serve install).

- **Population stability index** (Siddiqi 2006, *Credit Risk Scorecards*, ch. 11):
  ``PSI = sum_k (w_k - r_k) ln(w_k / r_k)`` over the shares ``w`` of the window and ``r`` of
  the reference in each bin (here the quantile bins plus a *missing* bin, so a change in
  missingness counts too). Shares are floored at :data:`PSI_FLOOR` so an empty bin does not
  make it infinite. Rules of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major shift.
- **Chi-square test of homogeneity** of the window's and the reference's counts in the
  same bins (a 2 x K contingency table; Pearson 1900): ``df = K' - 1`` over the K' bins
  that either side uses. Its p-value is the upper regularised incomplete gamma function
  ``Q(df / 2, stat / 2)``, written here from Numerical Recipes (Press et al. 2007, §6.2):
  a series below ``a + 1``, Lentz's continued fraction above; tested against scipy.
  Adjacent bins are merged until each expects 5 window counts (Cochran's rule).
"""

from __future__ import annotations

import math

import numpy as np

PSI_FLOOR = 1e-4
#: Fewest counts the window is expected to hold in a bin of the chi-square test.
MIN_EXPECTED = 5.0
_EPS = 1e-15
_ITERATIONS = 300


def psi(window: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """PSI per row of counts ``window`` (F, K) against counts ``reference`` (F, K)."""
    w = _shares(window)
    r = _shares(reference)
    return ((w - r) * np.log(w / r)).sum(axis=1)


def _shares(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    total = np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    return np.maximum(counts / total, PSI_FLOOR)


def chi2_homogeneity(window: np.ndarray, reference: np.ndarray) -> tuple[float, int, float]:
    """``(statistic, df, p_value)`` of Pearson's test that two count vectors (K,) share one
    distribution; bins empty on both sides are left out."""
    w, r = _merge_sparse(np.asarray(window, float), np.asarray(reference, float))
    n, m = w.sum(), r.sum()
    if len(w) < 2 or n == 0 or m == 0:
        return 0.0, 0, 1.0
    pooled = (w + r) / (n + m)
    stat = float(((w - n * pooled) ** 2 / (n * pooled)).sum())
    stat += float(((r - m * pooled) ** 2 / (m * pooled)).sum())
    df = len(w) - 1
    return stat, df, chi2_sf(stat, df)


def _merge_sparse(w: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge adjacent bins until each expects :data:`MIN_EXPECTED` window counts (Cochran's
    rule): with fewer, the chi-square approximation rejects far more often than ``alpha``
    (a feature observed in few patients spreads a small window over ten bins)."""
    n = w.sum()
    expected = n * (w + r) / max(w.sum() + r.sum(), 1.0)
    groups: list[list[float]] = []
    open_group = [0.0, 0.0, 0.0]  # window, reference, expected
    for k in range(len(w)):
        open_group = [open_group[0] + w[k], open_group[1] + r[k], open_group[2] + expected[k]]
        if open_group[2] >= MIN_EXPECTED:
            groups.append(open_group)
            open_group = [0.0, 0.0, 0.0]
    if open_group[2] > 0:
        if groups:
            groups[-1] = [a + b for a, b in zip(groups[-1], open_group, strict=True)]
        else:
            groups.append(open_group)
    merged = np.array(groups) if groups else np.zeros((0, 3))
    return merged[:, 0], merged[:, 1]


def chi2_sf(x: float, df: int) -> float:
    """``P(X > x)`` for ``X`` chi-square with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"chi2_sf: df must be >= 1, got {df}")
    if x <= 0:
        return 1.0
    return gammaincc(df / 2.0, x / 2.0)


def gammaincc(a: float, x: float) -> float:
    """The regularised upper incomplete gamma function ``Q(a, x) = Γ(a, x) / Γ(a)``."""
    if x < a + 1.0:
        return 1.0 - _series(a, x)
    return _continued_fraction(a, x)


def _series(a: float, x: float) -> float:
    """``P(a, x)`` by its power series (converges fast for ``x < a + 1``)."""
    term = total = 1.0 / a
    ap = a
    for _ in range(_ITERATIONS):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _continued_fraction(a: float, x: float) -> float:
    """``Q(a, x)`` by Lentz's continued fraction (converges fast for ``x >= a + 1``)."""
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, _ITERATIONS):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h
