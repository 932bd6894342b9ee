"""Decision curve analysis: net benefit of acting on the model across risk thresholds.

Vickers & Elkin (2006), "Decision curve analysis: a novel method for evaluating
prediction models", Medical Decision Making 26:565. Acting on every patient whose risk is
at least ``t`` has net benefit

.. math::
    \\mathrm{NB}(t) = \\frac{TP(t)}{N} - \\frac{FP(t)}{N} \\cdot \\frac{t}{1 - t}

in units of true positives per patient: ``t / (1 - t)`` is the harm of a false alarm
relative to the benefit of a true one that a clinician choosing threshold ``t`` accepts.
The model is useful at ``t`` when its curve lies above both "treat all" and "treat none"
(net benefit 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medseq.evaluation.metrics import check_binary


def net_benefit(y_true: object, y_prob: object, thresholds: object) -> np.ndarray:
    """Net benefit of treating ``y_prob >= t`` for each ``t`` in ``thresholds`` (in (0, 1))."""
    y, p = check_binary(y_true, y_prob)
    t = np.asarray(thresholds, dtype=np.float64)
    if t.size == 0 or t.min() <= 0.0 or t.max() >= 1.0:
        raise ValueError("thresholds must be non-empty and inside (0, 1)")
    treat = p[None, :] >= t[:, None]  # (n_thresholds, N)
    tp = (treat & (y[None, :] == 1)).sum(axis=1)
    fp = (treat & (y[None, :] == 0)).sum(axis=1)
    return tp / len(y) - fp / len(y) * t / (1.0 - t)


def decision_curve(
    y_true: object, y_prob: object, thresholds: object | None = None
) -> pd.DataFrame:
    """Net benefit of the model, of treating all and of treating none.

    ``thresholds`` defaults to 1 % to 50 % in steps of 1 %: the range in which an ICU
    clinician would plausibly act on a mortality risk.
    """
    t = np.arange(0.01, 0.505, 0.01) if thresholds is None else np.asarray(thresholds, float)
    y, _ = check_binary(y_true, y_prob)
    prevalence = float(np.mean(y))
    return pd.DataFrame(
        {
            "threshold": t,
            "model": net_benefit(y_true, y_prob, t),
            "treat_all": prevalence - (1.0 - prevalence) * t / (1.0 - t),
            "treat_none": np.zeros_like(t),
        }
    )
