"""Calibration: reliability curve, expected calibration error, and recalibration maps.

A risk of 0.3 should mean that about 3 in 10 such patients have the outcome. Networks
trained with class weights or early-stopped on AUROC often rank well but are over- or
under-confident, so medseq measures calibration (reliability diagram, ECE, Brier score,
calibration slope) and can fit a one- or two-parameter map on **validation** predictions:

* temperature scaling (Guo et al., 2017, "On calibration of modern neural networks",
  ICML): ``p' = sigmoid(logit(p) / T)``, one parameter ``T > 0``;
* Platt scaling (Platt, 1999): ``p' = sigmoid(a * logit(p) + b)``, two parameters; ``a`` is
  the calibration slope of Cox (1958) and must be positive.

Both maps are strictly increasing, so they never change the ranking (AUROC, AUPRC) and a
decision threshold maps one to one (:func:`apply_calibration` on the threshold). The
fitted parameters are plain JSON, stored in the bundle and applied only on request
(``Bundle.predict(..., calibrated=True)``), so raw numbers never change silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from medseq.evaluation.metrics import check_binary

METHODS = ("temperature", "platt")
STRATEGIES = ("uniform", "quantile")
_EPS = 1e-7


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


def _nll(y: np.ndarray, z: np.ndarray) -> float:
    """Mean binary cross-entropy of logits ``z``: log(1 + e^z) - y z, computed stably."""
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


@dataclass(frozen=True)
class ReliabilityCurve:
    """Binned predicted risk against observed frequency.

    Attributes
    ----------
    edges : ndarray of shape (n_bins + 1,)
    mean_predicted, observed : ndarray of shape (n_nonempty,)
        Mean predicted probability and fraction of positives in each non-empty bin.
    lo, hi : ndarray of shape (n_nonempty,)
        95 % Wilson interval of ``observed``, so a small bin's distance from the
        diagonal is read against its uncertainty.
    counts : ndarray of shape (n_nonempty,)
    """

    edges: np.ndarray
    mean_predicted: np.ndarray
    observed: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    counts: np.ndarray


def _bin_edges(p: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be an int >= 1, got {n_bins!r}")
    if strategy == "uniform":
        return np.linspace(0.0, 1.0, n_bins + 1)
    edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1)))
    edges[0], edges[-1] = 0.0, 1.0
    return edges


def _wilson(k: np.ndarray, n: np.ndarray, z: float = 1.959964) -> tuple[np.ndarray, np.ndarray]:
    phat = k / n
    denom = 1.0 + z**2 / n
    centre = (phat + z**2 / (2 * n)) / denom
    half = z * np.sqrt(phat * (1 - phat) / n + z**2 / (4 * n**2)) / denom
    return centre - half, centre + half


def reliability_curve(
    y_true: object, y_prob: object, n_bins: int = 10, strategy: str = "uniform"
) -> ReliabilityCurve:
    """Reliability diagram data: per bin, mean predicted risk and observed frequency.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0/1 labels.
    y_prob : array-like of shape (n_samples,)
        Predicted probabilities of class 1.
    n_bins : int, default=10
    strategy : {"uniform", "quantile"}, default="uniform"
        Equal-width bins on [0, 1] (the usual diagram), or bins holding equal numbers of
        samples (steadier when most risks are small, as for mortality).
    """
    y, p = check_binary(y_true, y_prob)
    edges = _bin_edges(p, n_bins, strategy)
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(which, minlength=len(edges) - 1)
    sum_p = np.bincount(which, weights=p, minlength=len(edges) - 1)
    sum_y = np.bincount(which, weights=y, minlength=len(edges) - 1)
    keep = counts > 0
    n, k = counts[keep].astype(np.float64), sum_y[keep]
    lo, hi = _wilson(k, n)
    return ReliabilityCurve(edges, sum_p[keep] / n, k / n, lo, hi, counts[keep])


def expected_calibration_error(
    y_true: object, y_prob: object, n_bins: int = 10, strategy: str = "uniform"
) -> float:
    """ECE: the count-weighted mean of ``|observed - mean predicted|`` over the bins.

    Naeini, Cooper & Hauskrecht (2015), AAAI. 0 is perfect; it depends on the binning,
    so compare ECEs computed with the same ``n_bins`` and ``strategy`` only.
    """
    curve = reliability_curve(y_true, y_prob, n_bins, strategy)
    gaps = np.abs(curve.observed - curve.mean_predicted)
    return float(np.sum(curve.counts * gaps) / np.sum(curve.counts))


def calibration_slope_intercept(y_true: object, y_prob: object) -> tuple[float, float]:
    """Slope ``a`` and intercept ``b`` of ``logit P(y=1) = a * logit(p) + b``.

    A well calibrated model has slope 1 and intercept 0; a slope below 1 means risks
    that are too extreme (over-fitting), above 1 too timid. On an external set this is
    the usual summary of calibration drift (Van Calster et al., 2019, BMC Medicine).
    """
    y, p = check_binary(y_true, y_prob)
    a, b = _fit_platt(y.astype(np.float64), _logit(p))
    return a, b


def _fit_temperature(y: np.ndarray, z: np.ndarray) -> float:
    from scipy.optimize import minimize_scalar

    result = minimize_scalar(
        lambda log_t: _nll(y, z / np.exp(log_t)),
        bounds=(np.log(0.05), np.log(20.0)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(np.exp(result.x))


def _fit_platt(y: np.ndarray, z: np.ndarray) -> tuple[float, float]:
    from scipy.optimize import minimize

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        s = theta[0] * z + theta[1]
        r = _sigmoid(s) - y  # d nll / d s
        return _nll(y, s), np.array([np.mean(r * z), np.mean(r)])

    result = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    return float(result.x[0]), float(result.x[1])


def fit_calibration(
    y_true: object, y_prob: object, method: str = "temperature", n_bins: int = 10
) -> dict[str, Any]:
    """Fit a recalibration map on validation labels and probabilities.

    Fit it on the validation (or out-of-fold) predictions, never on the test set: a map
    fitted on the test set makes the test calibration look perfect by construction.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Validation 0/1 labels, both classes present.
    y_prob : array-like of shape (n_samples,)
        Raw (uncalibrated) validation probabilities.
    method : {"temperature", "platt"}, default="temperature"
        One parameter (keeps the model's spread of logits, only rescales it) or two
        (also shifts them; better when the prevalence differs from training).
    n_bins : int, default=10
        Bins of the before/after ECE recorded with the parameters.

    Returns
    -------
    dict
        JSON-able: ``method``, its parameters (``temperature``, or ``slope`` and
        ``intercept``), ``n_samples``, and the validation ``nll``/``ece``/``brier``
        ``_before`` and ``_after`` so a reader sees what the fit did.

    Raises
    ------
    ValueError
        Unknown method, invalid inputs, or a Platt slope <= 0 (the scores are
        anti-correlated with the outcome on this data; recalibration would invert them).

    Examples
    --------
    >>> params = fit_calibration([0, 0, 1, 1, 0, 1], [0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    >>> params["method"], round(params["temperature"], 2)
    ('temperature', 0.58)
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    y, p = check_binary(y_true, y_prob)
    y = y.astype(np.float64)
    z = _logit(p)
    params: dict[str, Any] = {"method": method}
    if method == "temperature":
        params["temperature"] = _fit_temperature(y, z)
    else:
        slope, intercept = _fit_platt(y, z)
        if slope <= 0:
            raise ValueError(
                f"Platt scaling fitted a slope of {slope:.3g} <= 0: the validation scores "
                "are anti-correlated with the labels; check the labels or the model"
            )
        params |= {"slope": slope, "intercept": intercept}
    q = apply_calibration(p, params)
    params["n_samples"] = len(y)
    for tag, probs in (("before", p), ("after", q)):
        params[f"nll_{tag}"] = _nll(y, _logit(probs))
        params[f"ece_{tag}"] = expected_calibration_error(y, probs, n_bins)
        params[f"brier_{tag}"] = float(np.mean((probs - y) ** 2))
    return params


def apply_calibration(y_prob: object, params: dict[str, Any]) -> np.ndarray:
    """Map raw probabilities through fitted parameters (see :func:`fit_calibration`).

    Works on any shape, including a scalar threshold: ``apply_calibration(t, params)`` is
    the calibrated threshold that makes the same decisions as ``t`` on raw risks.
    """
    method = params.get("method")
    z = _logit(np.asarray(y_prob, dtype=np.float64))
    if method == "temperature":
        temperature = float(params["temperature"])
        if not temperature > 0:
            raise ValueError(f"calibration temperature must be > 0, got {temperature!r}")
        return _sigmoid(z / temperature)
    if method == "platt":
        return _sigmoid(float(params["slope"]) * z + float(params["intercept"]))
    raise ValueError(f"calibration method must be one of {METHODS}, got {method!r}")
