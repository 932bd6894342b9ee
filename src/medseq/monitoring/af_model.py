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

Isolated ectopic beats without a fixed pattern (a PVC or PAC here and there, as in MIT-BIH
200, 208, 223, 233) still make a window irregular. Format 2 (:data:`FORMAT`) therefore
adds the same eleven features once more, ``clean_*``, on the window with its ectopic beats
taken out by an RR-only rule (:func:`ectopic_mask`: a premature interval followed by a
compensatory pause, both relative to the window's median RR, the two replaced by their
mean), and ``ectopic_share``, the share of intervals so replaced. A PVC with a full
compensatory pause then adds no irregularity; AF, irregular between any two beats, stays
irregular after the rule. Format 1 files (the eleven features only) are still read.

A logistic regression over the standardised features gives the probability of AF. Its
coefficients, the scaling and the decision thresholds are a small JSON file written by
``benchmarks/train_af_rr.py`` (trained on PhysioNet/CinC 2017 only, thresholds chosen on
held-out CinC 2017 records): no weights in code, nothing fitted on MIT-BIH.

The file may also carry the episode rule chosen with its thresholds, ``alert_rule``
(``min_on_s``, ``min_off_s``: how long P(AF) must stay above ``threshold_on`` to open an
AF episode and below ``threshold_off`` to close it), written by
``benchmarks/select_af_rule.py``; thresholds and durations are chosen together, so they
travel together, and :class:`~medseq.monitoring.detector.StreamDetector` uses them instead
of its settings' ``af_rule`` durations. Without it the settings' durations apply.
"""

from __future__ import annotations

import json
import os
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from medseq.monitoring.dsp import median

RR_FEATURES = (
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
FEATURES_BY_FORMAT: dict[str, tuple[str, ...]] = {
    "medseq.af_rr/1": RR_FEATURES,
    "medseq.af_rr/2": (*RR_FEATURES, *(f"clean_{f}" for f in RR_FEATURES), "ectopic_share"),
}
#: Format 3 adds atrial activity (:mod:`medseq.monitoring.atrial`): the median P-wave
#: correlation of the window's beats and the share of beats above 0.5.
ATRIAL_FEATURES = ("p_corr_median", "p_corr_share_0.5")
FEATURES_BY_FORMAT["medseq.af_rr/3"] = (*FEATURES_BY_FORMAT["medseq.af_rr/2"], *ATRIAL_FEATURES)
FORMAT = "medseq.af_rr/2"
FEATURES = FEATURES_BY_FORMAT[FORMAT]
#: The ectopy rule's defaults: premature below ``short`` x median RR, pause above ``long``.
ECTOPY = {"short": 0.85, "long": 1.15}


def rr_features(rr_s: np.ndarray) -> np.ndarray:
    """The eleven :data:`RR_FEATURES` of one window of RR intervals ``(n,)`` in seconds,
    ``n >= 4``."""
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


def _pair_starts(rr: np.ndarray, short: float, long: float) -> np.ndarray:
    """Indices ``i`` where ``rr[i]`` is premature and ``rr[i + 1]`` its pause (pairs never
    overlap: an interval cannot be both shorter and longer than the median)."""
    med = float(median(rr))
    return np.flatnonzero((rr[:-1] < short * med) & (rr[1:] > long * med))


def ectopic_mask(
    rr_s: np.ndarray, short: float = ECTOPY["short"], long: float = ECTOPY["long"]
) -> np.ndarray:
    """Intervals ``(n,)`` of ectopic beats: a premature interval (``< short`` x the window's
    median RR) and the pause after it (``> long`` x median), marked as a pair.

    Uses the RR intervals only (no beat labels), so it runs wherever the AF model does.
    A premature beat whose pause is not yet in the window is left in (causal).
    """
    rr = np.asarray(rr_s, np.float64)
    starts = _pair_starts(rr, short, long)
    mask = np.zeros(len(rr), dtype=bool)
    mask[starts] = mask[starts + 1] = True
    return mask


def remove_ectopy(
    rr_s: np.ndarray, short: float = ECTOPY["short"], long: float = ECTOPY["long"]
) -> tuple[np.ndarray, float]:
    """The window with each ectopic pair (:func:`ectopic_mask`) replaced by its mean, and
    the share of intervals replaced. The length stays ``n`` and the pair's total time is
    kept, so a PVC with a full compensatory pause becomes two ordinary intervals."""
    rr = np.array(rr_s, np.float64)
    starts = _pair_starts(rr, short, long)
    for i in starts:
        rr[i] = rr[i + 1] = 0.5 * (rr[i] + rr[i + 1])
    return rr, 2.0 * len(starts) / len(rr)


def atrial_features(p_corr: np.ndarray) -> np.ndarray:
    """The :data:`ATRIAL_FEATURES` of one window's P-wave correlations ``(n,)`` (NaN where
    a beat had none yet: left out; 0 and 0 when no beat has one)."""
    c = np.asarray(p_corr, np.float64)
    c = c[np.isfinite(c)]
    if len(c) == 0:
        return np.zeros(len(ATRIAL_FEATURES))
    return np.array([float(median(c)), float(np.count_nonzero(c > 0.5)) / len(c)])


def window_features(
    rr_s: np.ndarray,
    fmt: str = FORMAT,
    ectopy: dict[str, float] | None = None,
    p_corr: np.ndarray | None = None,
) -> np.ndarray:
    """The features ``(F,)`` of one window of RR intervals in the given model format;
    format 3 also needs ``p_corr``, the P-wave correlation of the beat ending each interval."""
    raw = rr_features(rr_s)
    if fmt == "medseq.af_rr/1":
        return raw
    clean, share = remove_ectopy(rr_s, **(ectopy or ECTOPY))
    if fmt == "medseq.af_rr/2":
        return np.concatenate([raw, rr_features(clean), [share]])
    if p_corr is None:
        raise ValueError(f"AF RR model {fmt} needs the P-wave correlation of each beat (p_corr)")
    return np.concatenate([raw, rr_features(clean), [share], atrial_features(p_corr)])


def rr_windows(
    rr_s: np.ndarray,
    n_intervals: int,
    step: int = 1,
    fmt: str = FORMAT,
    ectopy: dict[str, float] | None = None,
    p_corr: np.ndarray | None = None,
) -> np.ndarray:
    """Features ``(w, F)`` of every window of ``n_intervals`` consecutive RR intervals
    (every ``step``-th), as the stream computes them beat by beat; ``p_corr`` ``(n,)`` is
    aligned with ``rr_s`` (format 3 only)."""
    rr = np.asarray(rr_s, np.float64)
    starts = range(0, len(rr) - n_intervals + 1, step)
    rows = [
        window_features(
            rr[s : s + n_intervals],
            fmt,
            ectopy,
            None if p_corr is None else p_corr[s : s + n_intervals],
        )
        for s in starts
    ]
    return np.array(rows) if rows else np.zeros((0, len(FEATURES_BY_FORMAT[fmt])))


class AFModel:
    """The probability of AF from the last ``n_intervals`` RR intervals of a stream.

    Parameters
    ----------
    state : dict
        What :meth:`state_dict` returns (``benchmarks/train_af_rr.py`` writes it): format
        ``medseq.af_rr/3`` (format 2 and atrial activity, :mod:`medseq.monitoring.atrial`),
        ``medseq.af_rr/2`` (RR features with and without ectopic beats) or the older
        ``medseq.af_rr/1`` (RR features only).
    """

    def __init__(self, state: dict[str, Any]) -> None:
        fmt = state.get("format")
        if fmt not in FEATURES_BY_FORMAT:
            raise ValueError(
                f"not an AF RR model: format {fmt!r}, want one of {sorted(FEATURES_BY_FORMAT)}"
            )
        want = list(FEATURES_BY_FORMAT[fmt])
        if list(state.get("features", [])) != want:
            raise ValueError(f"AF RR model ({fmt}) features {state.get('features')} != {want}")
        ectopy = dict(state.get("ectopy", ECTOPY))
        if set(ectopy) != set(ECTOPY) or not 0 < ectopy["short"] < 1 < ectopy["long"]:
            raise ValueError(f"AF RR model: ectopy must be 0 < short < 1 < long, got {ectopy}")
        self.state = dict(state)
        self.format: str = fmt
        self.ectopy = ectopy
        self.n_intervals = int(state["n_intervals"])
        self.mean = np.asarray(state["mean"], np.float64)
        self.scale = np.asarray(state["scale"], np.float64)
        self.coef = np.asarray(state["coef"], np.float64)
        self.intercept = float(state["intercept"])
        self.threshold_on = float(state["threshold_on"])
        self.threshold_off = float(state["threshold_off"])
        self.alert_rule = _alert_rule(state.get("alert_rule"))
        self.reset()

    @classmethod
    def load(cls, path: str | os.PathLike) -> AFModel:
        """Read the JSON file ``benchmarks/train_af_rr.py`` wrote."""
        path = Path(path)
        try:
            state = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: cannot read the AF model ({err})") from None
        if not isinstance(state, dict):
            raise ValueError(f"{path}: not an AF RR model (a JSON object is expected)")
        return cls(state)

    def state_dict(self) -> dict[str, Any]:
        """The JSON-serialisable state (coefficients, scaling, thresholds, provenance)."""
        return dict(self.state)

    @property
    def needs_atrial(self) -> bool:
        """Whether the model reads atrial activity (format 3) besides the RR intervals."""
        return self.format == "medseq.af_rr/3"

    def reset(self) -> None:
        """Forget the RR intervals (after a gap or bad signal)."""
        self._rr: deque[float] = deque(maxlen=self.n_intervals)
        self._p_corr: deque[float] = deque(maxlen=self.n_intervals)

    def features(self, rr_s: np.ndarray, p_corr: np.ndarray | None = None) -> np.ndarray:
        """This model's features of RR intervals ``(n,)`` (and, format 3, the P-wave
        correlations ``(n,)`` of the beats ending them): one row per window ``(w, F)``."""
        return rr_windows(rr_s, self.n_intervals, 1, self.format, self.ectopy, p_corr)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """P(AF) of feature rows ``(w, F)``."""
        z = (np.asarray(features, np.float64) - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-(z @ self.coef + self.intercept)))

    def update(self, rr_s: float, p_corr: float = float("nan")) -> float | None:
        """Add one RR interval (and, format 3, the P-wave correlation of the beat ending it);
        P(AF) of the last ``n_intervals``, None until there are."""
        self._rr.append(rr_s)
        self._p_corr.append(p_corr)
        if len(self._rr) < self.n_intervals:
            return None
        rr = np.fromiter(self._rr, np.float64, len(self._rr))
        pc = np.fromiter(self._p_corr, np.float64, len(self._p_corr))
        row = window_features(rr, self.format, self.ectopy, pc if self.needs_atrial else None)
        return float(self.predict_proba(row[None, :])[0])


def _alert_rule(rule: Any) -> dict[str, float] | None:
    """The optional ``alert_rule`` of a model file, checked: exactly ``min_on_s`` and
    ``min_off_s``, each a number of seconds >= 0."""
    if rule is None:
        return None
    keys = {"min_on_s", "min_off_s"}
    if not isinstance(rule, dict) or set(rule) != keys:
        raise ValueError(f"AF RR model: alert_rule must have exactly {sorted(keys)}, got {rule!r}")
    out = {}
    for key in sorted(keys):
        value = rule[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise ValueError(f"AF RR model: alert_rule {key} must be seconds >= 0, got {value!r}")
        out[key] = float(value)
    return out
