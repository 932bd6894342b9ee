"""Issue 21 applied to the signal streams: fuzzed bodies on every signal route, no 5xx.

The pattern of ``test_serving_fuzz.py`` on ``/v1/streams``: hypothesis generates

* arbitrary JSON whose keys are mostly the chunk's and SampledData's own field names,
  with wrong types everywhere;
* real-looking chunks (JSON arrays and FHIR ``Observation.valueSampledData`` of a real
  record) with any field replaced by an arbitrary JSON value;
* deeply nested JSON, oversized bodies (64 KB limit here), raw bytes, truncated JSON;

posted to an open stream, an unknown one, a malformed id, and as stream openings, plus
the alert and state routes with fuzzed query strings. At least 500 cases per run (600 are
asked for); no answer >= 500, no log record says "internal error", the server answers
``/healthz`` afterwards and holds at most ``max_cached_streams`` detectors.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from urllib.parse import quote

import pytest
from fuzz_strategies import FUZZ_SETTINGS, LIMIT, MIN_CASES, bodies, json_values, nested, replace_at
from hypothesis import given
from hypothesis import strategies as st
from serving_helpers import AUTH, TOKEN
from test_signal_streams import FS, T0, _observation, _record

from medseq.serving.api import create_app
from medseq.serving.settings import ServeSettings

FIELDS = [
    "start", "start_time", "fs_hz", "samples", "lead", "resourceType", "status", "id",
    "effectiveDateTime", "effectiveInstant", "effectivePeriod", "valueSampledData", "origin",
    "value", "unit", "code", "period", "factor", "dimensions", "data", "lowerLimit",
    "upperLimit", "component", "coding", "system",
]  # fmt: skip
POSTS = [
    ("POST", "/v1/streams/f1/samples"),
    ("POST", "/v1/streams/f2/samples"),
    ("POST", "/v1/streams/unknown/samples"),
    ("POST", "/v1/streams/bad%20id/samples"),
    ("PUT", "/v1/streams/f3"),
    ("PUT", "/v1/streams/f1"),
]
SAMPLES = [
    "2024-03-01T08:00:00+00:00", "2024-03-01", "Observation", "final", "E", "L", "U",
    "1 2 3", "mV", "uV", "360", "1e400", "NaN", "-0",
]  # fmt: skip
values = json_values(FIELDS, SAMPLES)
RECORD = _record("200", 30)


@st.composite
def chunks(draw) -> dict:
    k = draw(st.integers(0, 29))
    if draw(st.booleans()):
        body: dict = _observation(RECORD, k, obs_id=draw(st.sampled_from([None, f"o{k}"])))
    else:
        body = {"start": k * FS, "fs_hz": FS, "samples": RECORD[k * FS : (k + 1) * FS].tolist()}
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.lists(st.integers(0, 20), max_size=5))
        body = replace_at(body, path, draw(values))  # type: ignore[assignment]
    return body


def _oversized(n: int) -> bytes:
    return json.dumps({"start": 0, "samples": [0.123456789] * n}).encode()


BODIES = bodies(
    values,
    chunks(),
    st.builds(nested, st.integers(1, 400), st.integers(0, 1)),
    st.builds(_oversized, st.integers(1000, 8000)),
)
GETS = st.tuples(
    st.sampled_from(["/v1/streams/f1/alerts", "/v1/alerts", "/v1/streams/f1",
                     "/v1/streams/unknown/alerts"]),
    st.dictionaries(st.sampled_from(["after", "limit", "format"]),
                    st.text(max_size=6) | st.integers(-5, 2**64).map(str), max_size=3),
)  # fmt: skip


@pytest.fixture(scope="module")
def client(trained_beat_bundle, test_client_cls):
    settings_ = ServeSettings(tokens=(TOKEN,), max_body_bytes=LIMIT, max_cached_streams=2)
    with test_client_cls(
        create_app(trained_beat_bundle, settings_), raise_server_exceptions=False
    ) as c:
        for sid in ("f1", "f2"):
            body = {"fs_hz": FS, "start_time": T0.isoformat()}
            assert c.put(f"/v1/streams/{sid}", json=body, headers=AUTH).status_code == 201
        yield c


def test_fuzzed_bodies_on_the_signal_routes_never_get_a_5xx(client, caplog):
    caplog.set_level(logging.ERROR)
    statuses: Counter[int] = Counter()
    failures: list[tuple[str, bytes, int, str]] = []

    @FUZZ_SETTINGS
    @given(route=st.sampled_from(POSTS), body=BODIES, query=GETS, get=st.integers(0, 9))
    def call(route, body: bytes, query, get: int) -> None:
        if get == 0:  # one case in ten reads with a fuzzed query string
            path, params = query
            qs = "&".join(f"{k}={quote(v)}" for k, v in params.items())
            answer = client.get(f"{path}?{qs}", headers=AUTH)
        else:
            method, path = route
            answer = client.request(method, path, content=body, headers=AUTH)
        statuses[answer.status_code] += 1
        if answer.status_code >= 500:
            failures.append((path, body[:300], answer.status_code, answer.text[:300]))

    call()
    assert not failures, failures[:5]
    assert sum(statuses.values()) >= MIN_CASES, statuses
    assert statuses[200] > 0 and statuses[422] > 0 and statuses[413] > 0, statuses
    assert statuses[404] > 0 and statuses[409] > 0, statuses
    assert client.get("/healthz").status_code == 200  # alive
    assert not [r for r in caplog.records if "internal error" in r.getMessage()]
    assert client.app.state.signals.cached() <= 2  # bounded: the cache's size
