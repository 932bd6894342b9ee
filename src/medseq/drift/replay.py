"""Replay a stream of samples through the service's drift monitor, offline.

A drift threshold is only as good as its false-alarm rate on data that has *not* moved and
its delay on data that has. Both are measured by serving a stream, request by request, to
the very :class:`~medseq.drift.window.DriftWindow` that ``POST /v1/predict`` feeds
(:mod:`medseq.serving.drift_routes`), with the model inputs the bundle's featurizer made
and the model's predictions; no HTTP, so a grid of settings replays in seconds.

:func:`replay` records the flag after every request, the flag and drifting features at
the end of every tumbling window, and the first request after which the flag was on.
:func:`rotation_profiles` builds the held-out references used to *choose* the settings on
the training set alone: the reference of fold *k* is profiled from the other folds, and
fold *k* is replayed against it, as if it were the first patients after deployment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medseq.drift.profile import build_profile
from medseq.drift.window import DriftSettings, DriftWindow


@dataclass
class Replay:
    """What a monitor said while a stream was served.

    Attributes
    ----------
    n_samples : int
        Samples served.
    flags : list of bool
        The flag after each request.
    served : list of int
        Samples served after each request (same length as ``flags``).
    windows : list of dict
        At the end of each full tumbling window (``served`` a multiple of the window):
        ``flag``, ``drifting`` (feature and prediction names to their PSI, inputs
        largest PSI first, then predictions) and
        ``max_psi`` (largest input PSI).
    first_alarm : int or None
        Samples served when the flag first came on; None if it never did.
    alarms : int
        Times the flag turned on.
    last : dict
        ``DriftWindow.report()`` at the end of the stream.
    """

    n_samples: int
    flags: list[bool] = field(default_factory=list)
    served: list[int] = field(default_factory=list)
    windows: list[dict[str, Any]] = field(default_factory=list)
    first_alarm: int | None = None
    alarms: int = 0
    last: dict[str, Any] = field(default_factory=dict)

    @property
    def flagged_windows(self) -> int:
        """Tumbling windows whose flag was on at their end."""
        return sum(bool(w["flag"]) for w in self.windows)

    @property
    def flagged_requests(self) -> int:
        """Requests after which the flag was on."""
        return sum(self.flags)


def _rows(arrays: Mapping[str, np.ndarray], rows: np.ndarray | slice) -> dict[str, np.ndarray]:
    return {k: np.asarray(v)[rows] for k, v in arrays.items()}


def _check_lengths(arrays: Mapping[str, np.ndarray], predictions: np.ndarray) -> int:
    n = len(predictions)
    wrong = {k: len(v) for k, v in arrays.items() if len(v) != n}
    if wrong:
        raise ValueError(f"replay: every array must hold one row per prediction ({n}); got {wrong}")
    return n


def replay(
    profile: Mapping[str, Any],
    description: Any,
    arrays: Mapping[str, np.ndarray],
    predictions: np.ndarray,
    settings: DriftSettings,
    *,
    per_request: int = 20,
    task: str = "binary",
    class_names: list[str] | None = None,
) -> Replay:
    """Serve ``arrays`` in order, ``per_request`` samples a request, to a fresh monitor.

    Parameters
    ----------
    profile : dict
        The reference profile (``bundle.drift_profile`` or one of :func:`rotation_profiles`).
    description : FeaturizerDescription
        ``describe(bundle.featurizer)``.
    arrays : mapping of str to ndarray
        The featurizer's output for the stream, one row per sample, in serving order.
    predictions : ndarray of shape (N,) or (N, K)
        The model's output for those samples.
    settings : DriftSettings
    per_request : int, default=20
        Samples per request (the monitor checks at most once per request).
    """
    if per_request < 1:
        raise ValueError(f"replay: per_request must be >= 1, got {per_request}")
    n = _check_lengths(arrays, predictions)
    monitor = DriftWindow(profile, description, settings, task, class_names)
    out = Replay(n_samples=n)
    for start in range(0, n, per_request):
        stop = min(start + per_request, n)
        monitor.observe(_rows(arrays, slice(start, stop)), np.asarray(predictions)[start:stop])
        out.flags.append(bool(monitor.flag))
        out.served.append(stop)
        if monitor.flag and out.first_alarm is None:
            out.first_alarm = stop
        if stop % settings.window < per_request and stop >= settings.window:
            report = monitor.report()
            top = max((f["psi"] for f in report["features"]), default=0.0)
            psis = {f["name"]: f["psi"] for f in report["features"] + report["predictions"]}
            names = report["drifting_features"]
            names += [o["name"] for o in report["predictions"] if o["drifting"]]
            drifting = {name: psis[name] for name in names}
            out.windows.append({"flag": bool(monitor.flag), "drifting": drifting, "max_psi": top})
    out.alarms = monitor.alarms
    out.last = monitor.report()
    return out


def rotation_profiles(
    description: Any,
    arrays: Mapping[str, np.ndarray],
    predictions: np.ndarray,
    folds: Sequence[int] | np.ndarray,
    *,
    task: str = "binary",
    class_names: list[str] | None = None,
    n_bins: int = 10,
    profile_predictions: bool = True,
) -> dict[int, tuple[dict[str, Any], np.ndarray]]:
    """Per fold ``k``: the reference profile of the other folds, and fold ``k``'s rows.

    ``predictions`` should be out-of-fold (each sample's prediction by the members that did
    not train on it), so the held-out fold is scored as service would score a new patient.
    The featurizer was fitted on every fold; the reference of each rotation is smaller than
    the bundle's (``(K - 1) / K`` of it), which makes the chosen settings slightly cautious.

    ``profile_predictions=False`` leaves the predictions out of the references (and so of
    the flag): out-of-fold predictions of fold ``k`` come from fold ``k``'s members, a
    different model from the other folds', whose risk scale may differ (one seed per fold:
    PSI up to 0.18 between folds on PhysioNet 2012), a difference the service, which
    serves one fixed ensemble, never meets.
    """
    fold = np.asarray(folds)
    n = _check_lengths(arrays, predictions)
    if len(fold) != n:
        raise ValueError(f"rotation_profiles: {len(fold)} fold labels for {n} samples")
    out = {}
    for k in np.unique(fold):
        rest, held = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        pred = np.asarray(predictions)[rest] if profile_predictions else None
        profile = build_profile(
            description, _rows(arrays, rest), pred,
            task=task, class_names=class_names, n_bins=n_bins,
        )  # fmt: skip
        out[int(k)] = (profile, held)
    return out
