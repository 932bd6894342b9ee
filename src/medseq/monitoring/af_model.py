"""An AF model over the RR intervals of the last beats, trained elsewhere, run in numpy.

The rule of :class:`~medseq.monitoring.episodes.RRIrregularity` calls any irregular rhythm
AF, so frequent ectopy (bigeminy, trigeminy) raises false AF alerts. Ectopic rhythms are
irregular in a *pattern*: an RR interval resembles the one two or three beats back. AF is
irregular without one. The features below measure both, over a causal window of the last
``n_intervals`` RR intervals, relative to the window's median RR (so they do not depend on
the heart rate or the sampling rate):

=================  ==================================================================
``share_k``        share of successive differences ``|RR_i - RR_{i-1}|`` above ``k`` median
                   RR, for k = 0.05, 0.1, 0.2
``lag{1,2,3}``     median ``|RR_i - RR_{i-lag}|`` / median RR
``min_lag``        the smallest of those three: low for sinus rhythm *and* for k-geminy
``cv``             standard deviation / mean RR
``rmssd``          root mean square of successive differences / mean RR
``alternation``    share of successive differences that change sign
``mean_rr_s``      mean RR in seconds (heart rate)
=================  ==================================================================

A logistic regression over the standardised features gives the probability of AF. Its
coefficients, the scaling and the decision thresholds are a small JSON file written by
``benchmarks/train_af_rr.py`` (trained on PhysioNet/CinC 2017 only, thresholds chosen on
held-out CinC 2017 records): no weights in code, nothing fitted on MIT-BIH.
"""

from __future__ import annotations

import json
import os
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from medseq.monitoring.dsp import median

FEATURES = (
    "share_0.05",
    "share_0.1",
    "share_0.2",
    "lag1",
    "lag2",
    "lag3",
    "min_lag",
    "cv",
    "rmssd",
    "alternation",
    "mean_rr_s",
)
FORMAT = "medseq.af_rr/1"


def rr_features(rr_s: np.ndarray) -> np.ndarray:
    """The features of one window of RR intervals ``(n,)`` in seconds, ``n >= 4``."""
    rr = np.asarray(rr_s, np.float64)
    med = float(median(rr))
    mean = float(rr.mean())
    diff = np.diff(rr)
    absdiff = np.abs(diff)
    lags = [float(median(np.abs(rr[k:] - rr[:-k]))) / med for k in (1, 2, 3)]
    signs = np.sign(diff)
    alternation = float(np.count_nonzero(signs[1:] * signs[:-1] < 0)) / max(len(signs) - 1, 1)
    return np.array(
        [
            *(float(np.count_nonzero(absdiff > k * med)) / len(diff) for k in (0.05, 0.1, 0.2)),
            *lags,
            min(lags),
            float(rr.std()) / mean,
            float(np.sqrt(np.dot(diff, diff) / len(diff))) / mean,
            alternation,
            mean,
        ]
    )


def rr_windows(rr_s: np.ndarray, n_intervals: int, step: int = 1) -> np.ndarray:
    """Features ``(w, F)`` of every window of ``n_intervals`` consecutive RR intervals
    (every ``step``-th), as the stream computes them beat by beat."""
    rr = np.asarray(rr_s, np.float64)
    starts = range(0, len(rr) - n_intervals + 1, step)
    rows = [rr_features(rr[s : s + n_intervals]) for s in starts]
    return np.array(rows) if rows else np.zeros((0, len(FEATURES)))


class AFModel:
    """The probability of AF from the last ``n_intervals`` RR intervals of a stream.

    Parameters
    ----------
    state : dict
        What :meth:`state_dict` returns (``benchmarks/train_af_rr.py`` writes it).
    """

    def __init__(self, state: dict[str, Any]) -> None:
        if state.get("format") != FORMAT:
            raise ValueError(f"not an AF RR model: format {state.get('format')!r}, want {FORMAT!r}")
        if list(state.get("features", [])) != list(FEATURES):
            raise ValueError(f"AF RR model features {state.get('features')} != {list(FEATURES)}")
        self.state = dict(state)
        self.n_intervals = int(state["n_intervals"])
        self.mean = np.asarray(state["mean"], np.float64)
        self.scale = np.asarray(state["scale"], np.float64)
        self.coef = np.asarray(state["coef"], np.float64)
        self.intercept = float(state["intercept"])
        self.threshold_on = float(state["threshold_on"])
        self.threshold_off = float(state["threshold_off"])
        self.reset()

    @classmethod
    def load(cls, path: str | os.PathLike) -> AFModel:
        """Read the JSON file ``benchmarks/train_af_rr.py`` wrote."""
        path = Path(path)
        try:
            state = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: cannot read the AF model ({err})") from None
        return cls(state)

    def state_dict(self) -> dict[str, Any]:
        """The JSON-serialisable state (coefficients, scaling, thresholds, provenance)."""
        return dict(self.state)

    def reset(self) -> None:
        """Forget the RR intervals (after a gap or bad signal)."""
        self._rr: deque[float] = deque(maxlen=self.n_intervals)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """P(AF) of feature rows ``(w, F)``."""
        z = (np.asarray(features, np.float64) - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-(z @ self.coef + self.intercept)))

    def update(self, rr_s: float) -> float | None:
        """Add one RR interval; P(AF) of the last ``n_intervals``, None until there are."""
        self._rr.append(rr_s)
        if len(self._rr) < self.n_intervals:
            return None
        rr = np.fromiter(self._rr, np.float64, len(self._rr))
        return float(self.predict_proba(rr_features(rr)[None, :])[0])
