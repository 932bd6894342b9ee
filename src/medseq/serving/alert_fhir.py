"""Monitor alerts as FHIR R4 resources: one ``Observation`` per alert.

Why an Observation (the reasoning is in ``docs/serving.md``, section "Signal streams"):
FHIR's resource for an alarm raised by a patient-connected device is ``DeviceAlert``,
which exists only from the R6 drafts on; until then the Health Care Devices work group's
guidance (and IHE's alert communication profiles it derives from) records a device's
physiological alarm as an Observation of the detected condition. The alternatives R4 has
are meant for other things: ``Flag`` is a long-lived prospective warning shown with the
record (a fall risk, an infection-control precaution), ``DetectedIssue`` is a problem with
a clinical action (a drug interaction, a duplicate order), and ``Communication`` is the
act of telling someone, which a paging system would create from this Observation.

The Observation carries: ``code`` (the episode and the alert kind, in a medseq code
system: no standard terminology names "a run of S beats reported by this detector"),
``status`` (``preliminary`` for an onset, the episode may still be revised by its offset;
``final`` for an offset or a suppression), ``effectivePeriod`` (evidence start to the
moment the monitor knew, as dateTimes when the stream has a ``start_time``), the times on
the stream's clock as components (seconds), ``device`` (the model version) and
``subject`` (the stream id as an identifier: the service does not know the patient).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

CODE_SYSTEM = "https://medseq.dev/fhir/CodeSystem/monitor-alert"
STREAM_SYSTEM = "urn:medseq:stream"
_UCUM = "http://unitsofmeasure.org"


def _seconds(code: str, value: float) -> dict[str, Any]:
    return {
        "code": {"coding": [{"system": CODE_SYSTEM, "code": code}], "text": code},
        "valueQuantity": {"value": value, "unit": "s", "system": _UCUM, "code": "s"},
    }


def alert_observation(
    alert: dict[str, Any], start_time: str | None, model_version: str
) -> dict[str, Any]:
    """The FHIR R4 Observation of one stored alert (module doc)."""
    kind, episode = alert["kind"], alert["episode"]
    code = f"{episode.replace(' ', '-')}-{kind}"
    text = f"{episode} {kind}" + (f" ({alert['reason']})" if alert.get("reason") else "")
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"alert-{alert['id']}",
        "status": "preliminary" if kind == "onset" else "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "procedure", "display": "Procedure"}]}],
        "code": {"coding": [{"system": CODE_SYSTEM, "code": code, "display": text}],
                 "text": text},
        "subject": {"identifier": {"system": STREAM_SYSTEM, "value": alert["stream_id"]}},
        "device": {"display": f"medseq monitor, model {model_version}"},
        "component": [_seconds("start_s", alert["start_s"]),
                      _seconds("reported_s", alert["reported_s"])],
    }  # fmt: skip
    if alert.get("reason"):
        obs["valueString"] = f"suppressed: signal quality {alert['reason']}"
    if start_time is not None:
        origin = datetime.fromisoformat(start_time)
        obs["effectivePeriod"] = {
            "start": (origin + timedelta(seconds=alert["start_s"])).isoformat(),
            "end": (origin + timedelta(seconds=alert["reported_s"])).isoformat(),
        }
    return obs


def alert_bundle(
    alerts: list[dict[str, Any]], start_times: dict[str, str | None], model_version: str
) -> dict[str, Any]:
    """A ``searchset`` Bundle of the alerts' Observations."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(alerts),
        "entry": [
            {"resource": alert_observation(a, start_times.get(a["stream_id"]), model_version),
             "search": {"mode": "match"}}
            for a in alerts
        ],
    }  # fmt: skip
