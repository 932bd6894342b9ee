"""Helpers shared by the serving tests (not fixtures: plain functions)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import numpy as np
import torch

from medseq.bundle import Bundle
from medseq.models import ModelConfig, build_model
from medseq.serving.engine import Observation
from medseq.serving.inputs import History

T = TypeVar("T")

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def bundle_like(base: Bundle, n_members: int = 1, seed: int = 0, **config) -> Bundle:
    """A bundle with ``base``'s fitted featurizer and freshly initialised real models."""
    torch.manual_seed(seed)
    cfg = ModelConfig(
        input_size=base.featurizer.n_features, static_size=base.featurizer.n_static, **config
    )
    members = [build_model(cfg).eval() for _ in range(n_members)]
    return Bundle(cfg, base.featurizer, members, threshold=0.3, provenance=dict(base.provenance))


def stays(data, start: int, n: int):
    """(subject_id, events, static dict) of ``n`` real stays from position ``start``."""
    ids = data.static.index.to_numpy()[start : start + n]
    events = data.events[data.events.subject_id.isin(ids)]
    for sid in ids:
        static = {k: v for k, v in data.static.loc[sid].items() if v == v}
        yield int(sid), events[events.subject_id == sid], static


def observations(events) -> list[Observation]:
    rows = zip(events.code, events.time, events.value, strict=True)
    return [Observation(c, t, v) for c, t, v in rows]


def hourly_updates(data, start: int, n: int) -> dict[str, list[History]]:
    """Per patient, one History per charted hour of a real stay (static with the first)."""
    plans: dict[str, list[History]] = {}
    for sid, events, static in stays(data, start, n):
        obs = observations(events)
        hours = np.floor(events.time.to_numpy())
        updates = []
        for k, hour in enumerate(np.unique(hours)):
            part = [o for o, h in zip(obs, hours, strict=True) if h == hour]
            history = History(f"p{sid}", part, list(range(len(part))))
            if k == 0:
                history.static.update(static)
            updates.append(history)
        plans[f"p{sid}"] = updates
    return plans


def round_robin(plans: dict[str, list[History]]) -> Iterator[tuple[str, History]]:
    """Round robin over the patients, so that a small cache evicts between updates."""
    for k in range(max(len(u) for u in plans.values())):
        for pid, updates in plans.items():
            if k < len(updates):
                yield pid, updates[k]


def run_concurrently(target: Callable[[T], object], args: Iterable[T]) -> list[BaseException]:
    """``target(arg)`` for every arg, each in its own thread, all at once; what they raised
    (a thread's exception never reaches pytest by itself: the test asserts this is empty)."""
    errors: list[BaseException] = []

    def run(arg: T) -> None:
        try:
            target(arg)
        except BaseException as err:  # collected for the test thread
            errors.append(err)

    threads = [threading.Thread(target=run, args=(arg,)) for arg in args]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def batch_risk(bundle: Bundle, events, data, sid: int) -> float:
    features = bundle.featurizer.transform(events, data.static, np.array([sid]))
    return float(bundle.predict_arrays(features)[0])


def event_rows(events) -> list[dict]:
    """The event-table JSON form of a frame of events."""
    return [
        {"time": float(t), "code": str(c), "value": float(v)}
        for t, c, v in zip(events.time, events.code, events.value, strict=True)
    ]


ADMISSION = "2024-03-01T00:00:00+00:00"


def fhir_bundle(patients, table, *, with_encounter: bool = True) -> dict:
    """A FHIR R4 Bundle (Patient, Encounter, Observations) of real stays.

    ``patients`` holds (patient_id, events, static dict); codes and units come from the
    shipped LOINC table (local codes where a variable has no LOINC code).
    """
    from datetime import datetime, timedelta

    start = datetime.fromisoformat(ADMISSION)
    entries = []
    for pid, events, static in patients:
        subject = {"reference": f"Patient/{pid}"}
        patient = {"resourceType": "Patient", "id": pid}
        if "Gender" in static:
            patient["gender"] = "male" if static["Gender"] == 1 else "female"
        if "Age" in static:
            born = start.date().replace(year=start.year - int(static["Age"])) - timedelta(days=1)
            patient["birthDate"] = born.isoformat()
        entries.append({"resource": patient})
        if with_encounter:
            entries.append({"resource": _encounter(subject)})
        rows = [(0.0, k, v) for k, v in static.items() if k in ("Height", "ICUType", "Weight")]
        rows += list(zip(events.time, events.code, events.value, strict=True))
        for t, code, value in rows:
            when = (start + timedelta(seconds=round(float(t) * 3600))).isoformat()
            entries.append({"resource": _observation(table, subject, when, code, value)})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _encounter(subject: dict) -> dict:
    return {
        "resourceType": "Encounter",
        "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": subject,
        "period": {"start": ADMISSION},
    }


def _observation(table, subject: dict, when: str, code: str, value: float) -> dict:
    entry = table.entries[code]
    if entry["loinc"]:
        coding = {"system": "http://loinc.org", "code": entry["loinc"][0]}
    else:
        coding = {"system": table.local_system, "code": code}
    quantity = {"value": float(value), "system": "http://unitsofmeasure.org"}
    quantity["code"] = entry["unit"]
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [coding]},
        "subject": subject,
        "effectiveDateTime": when,
        "valueQuantity": quantity,
    }
