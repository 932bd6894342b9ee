"""Least-squares line with R², to say whether a cost grows linearly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LinearFit:
    """``y ≈ slope * x + intercept`` with the coefficient of determination ``r2``."""

    slope: float
    intercept: float
    r2: float

    def predict(self, x: np.ndarray | float) -> np.ndarray | float:
        return self.slope * np.asarray(x, dtype=float) + self.intercept


def linear_fit(x, y) -> LinearFit:
    """Ordinary least squares through ``(x, y)`` (scipy's ``linregress``); R² = r².

    Raises ``ValueError`` for fewer than three points (two always fit exactly) or x without
    spread, since the R² would then say nothing about linearity.
    """
    from scipy import stats

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-d of equal length, got {x.shape} and {y.shape}")
    if len(x) < 3:
        raise ValueError(f"a linear fit needs at least 3 points to judge linearity, got {len(x)}")
    if np.ptp(x) == 0:
        raise ValueError("x has a single value: no line can be fitted")
    if np.ptp(y) == 0:  # a flat series is perfectly explained by a flat line
        return LinearFit(0.0, float(y[0]), 1.0)
    res = stats.linregress(x, y)
    return LinearFit(float(res.slope), float(res.intercept), float(res.rvalue**2))
