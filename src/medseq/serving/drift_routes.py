"""``GET /v1/drift`` and the ``medseq_drift_*`` lines of ``/metrics``: is the service still
seeing the kind of samples its model was trained on?

Every ``POST /v1/predict`` adds its items' model inputs and predictions to a sliding
window (:class:`medseq.drift.window.DriftWindow`), compared with the reference profile
the bundle stored at training time (:mod:`medseq.drift.profile`). Streaming updates
(``/v1/patients/...``) are not profiled: a stay's inputs change with every observation,
and its final state is what a batch request would send.

Drift is **disabled, with the reason**, when the bundle carries no profile: a bundle saved
before medseq stored one (retrain it), or one whose featurizer names no feature (raw
waveforms, SMILES tokens), as the featurizer's description says. Nothing in the window,
the JSON or the log is a patient's value or identifier: bins, counts, shares, names of
features.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request

logger = logging.getLogger(__name__)

NO_PROFILE = (
    "this bundle carries no drift profile (it was saved before medseq stored a reference "
    "profile of the training inputs); retrain it with this medseq version to enable drift "
    "monitoring"
)


def open_monitor(bundle: Any, settings: Any) -> tuple[Any, str | None]:
    """The bundle's :class:`DriftWindow`, or None and the sentence saying why not."""
    from medseq.drift import DriftWindow, profile_refusal
    from medseq.features.base import describe

    if bundle is None:
        return None, "the bundle could not be loaded (see /v1/model)"
    try:
        description = describe(bundle.featurizer)
    except TypeError as err:  # a featurizer outside the describe() protocol
        return None, str(err)
    if bundle.drift_profile is None:
        return None, profile_refusal(description) or NO_PROFILE
    try:
        window = DriftWindow(
            bundle.drift_profile, description, settings, bundle.task, bundle.class_names
        )
    except (KeyError, ValueError) as err:
        return None, f"the bundle's drift profile is unusable: {err}"
    return window, None


def observe(state: Any, arrays: dict[str, Any], scores: Any) -> None:
    """Add one request's items to the window (no-op when drift is disabled)."""
    monitor = getattr(state, "drift", None)
    if monitor is None:
        return
    try:
        monitor.observe(arrays, scores)
    except Exception as err:  # watching the model must never fail a prediction
        name = type(err).__name__  # the message is not logged: it might hold a value
        logger.error("drift monitoring disabled after an internal error (%s)", name)
        state.drift = None
        state.drift_reason = f"disabled after an internal error ({name}); see the service log"


async def drift(request: Request) -> dict[str, Any]:
    """Drift of the served inputs and predictions against the training profile.

    ``drift`` is the flag; ``drifting_features`` names the features that drift, largest
    PSI first; ``features`` gives each one's PSI, chi-square p-value, missing share and
    out-of-range share (window and reference); ``predictions`` the same for the outputs.
    """
    state = request.app.state
    if state.drift is None:
        return {"enabled": False, "drift": False, "reason": state.drift_reason}
    return state.drift.report()


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def prometheus_lines(state: Any) -> list[str]:
    """The ``medseq_drift_*`` gauges (per-feature ones labelled ``feature``)."""
    monitor = getattr(state, "drift", None)
    lines = _gauge("medseq_drift_enabled", "1 when drift monitoring runs.", monitor is not None)
    if monitor is None:
        return lines
    r = monitor.report()
    features, outputs = r["features"], r["predictions"]
    lines += _gauge("medseq_drift_flag", "1 while an input or output drifts.", r["drift"])
    lines += [
        "# HELP medseq_drift_alarms_total Times the drift flag turned on.",
        "# TYPE medseq_drift_alarms_total counter",
        f"medseq_drift_alarms_total {r['alarms']}",
    ]
    single = (
        ("window_samples", "Samples in the drift window.", r["window"]["n_samples"]),
        ("features_drifting", "Input features drifting now.", len(r["drifting_features"])),
        ("out_of_range_share", "Share of observed input cells at or beyond the training "
         "range (0.5 and 99.5 percentiles).", r["out_of_range"]["window"]),
    )  # fmt: skip
    for name, help_text, value in single:
        lines += _gauge(f"medseq_drift_{name}", help_text, value)
    labelled = (
        ("psi", "Population stability index per input feature.",
         [(f["name"], f["psi"]) for f in features]),
        ("p_value", "Chi-square p-value per input feature (1: PSI below threshold, not "
         "tested).", [(f["name"], f["p_value"]) for f in features]),
        ("missing_share", "Share of window samples missing a feature.",
         [(f["name"], f["missing"]["window"]) for f in features]),
        ("prediction_psi", "Population stability index per model output.",
         [(o["name"], o["psi"]) for o in outputs]),
    )  # fmt: skip
    for name, help_text, rows in labelled:
        label = "output" if name.startswith("prediction") else "feature"
        lines += _gauge(f"medseq_drift_{name}", help_text, rows, label)
    return lines


def _gauge(name: str, help_text: str, value: Any, label: str = "feature") -> list[str]:
    """A gauge family: one value, or ``(label value, value)`` rows."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    if not isinstance(value, list):
        return [*lines, f"{name} {float(value):g}"]
    for key, number in value:
        lines.append(f'{name}{{{label}="{_label(key)}"}} {float(number):g}')
    return lines
