"""Dataset "flat_icu" streamed one observation at a time: real PhysioNet 2012 stays, exported
as flat CSVs and read through a mapping file, train a small bundle; the same stays streamed
row by row (through the engine, and over HTTP) end at the bundle's batch prediction."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from medseq.bundle import load_bundle
from medseq.capabilities import matrix
from medseq.datasets.registry import get_dataset
from medseq.serving.engine import Observation, StreamingEngine
from physionet2012_flat import FEATURES, export, read_stays

TOL = 1e-5
TOKEN = "flat-icu-stream-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

pytestmark = pytest.mark.slow  # trains a bundle (about half a minute on one core)


@pytest.fixture(scope="module")
def flat(tmp_path_factory) -> tuple[Path, object]:
    """400 stays of set A as flat CSVs: the mapping file and the data flat_icu reads."""
    root = tmp_path_factory.mktemp("flat_icu_stream")
    mapping = export(read_stays("a", 400, root / "set-a"), root / "flat")
    return mapping, get_dataset("flat_icu").read(mapping)


@pytest.fixture(scope="module")
def flat_bundle(flat, tmp_path_factory) -> Path:
    """A GRU bundle trained by the runner on the flat path (summary fusion, as the config)."""
    from medseq.experiment import parse_config, run_experiment

    mapping, _ = flat
    raw = {
        "name": "flat-icu-small",
        "seeds": [0],
        "data": {"dataset": "flat_icu", "train": str(mapping), "task": "label"},
        "features": FEATURES,
        "model": {"cell": "gru", "hidden_size": 8, "pooling": "mean", "input_delta": True},
        "train": {"epochs": 3, "lr": 3e-3, "monitor": "auroc", "progress": False},
        "evaluate": {"n_boot": 20},
    }
    out = tmp_path_factory.mktemp("flat_icu_bundle")
    config = replace(parse_config(raw), output_dir=str(out))
    return Path(run_experiment(config, progress=False).bundle_dir)


def _stays(data, start: int, n: int):
    """(subject_id, events sorted by time, static dict) of ``n`` stays from ``start``."""
    for sid in data.labels.index.to_numpy()[start : start + n]:
        events = data.events[data.events.subject_id == sid].sort_values("time", kind="stable")
        static = {k: float(v) for k, v in data.static.loc[sid].items() if v == v}
        yield int(sid), events, static


def test_a_streamed_stay_ends_at_the_batch_prediction(flat, flat_bundle):
    _, data = flat
    bundle = load_bundle(flat_bundle)
    assert bundle.dataset == "flat_icu"
    engine = StreamingEngine(bundle)  # the incremental featurizer from flat_icu's spec
    stays = list(_stays(data, 300, 6))
    expected = bundle.predict(data, np.array([sid for sid, _, _ in stays]))
    for (sid, events, static), batch in zip(stays, expected, strict=True):
        state = engine.new_state(static)
        columns = (events.code, events.time, events.value)
        rows = [Observation(c, t, v) for c, t, v in zip(*columns, strict=True)]
        for row in rows:  # one observation per update
            engine.update(state, [row])
        assert abs(state.risk - float(batch)) <= TOL, sid
        assert state.n_observations == sum(0 <= r.time <= 48 for r in rows)


def test_streaming_over_http_equals_batch_and_refuses_fhir(flat, flat_bundle):
    import warnings

    from medseq.serving.api import create_app
    from medseq.serving.settings import ServeSettings

    with warnings.catch_warnings():  # starlette warns about plain httpx
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    _, data = flat
    bundle = load_bundle(flat_bundle)
    sid, events, static = next(_stays(data, 350, 1))
    app = create_app(flat_bundle, ServeSettings(tokens=(TOKEN,), state_db=":memory:"))
    with TestClient(app) as client:
        hours = np.floor(events.time.to_numpy())
        for k, hour in enumerate(np.unique(hours)):
            part = events[hours == hour]
            rows = [
                {"time": float(t), "code": str(c), "value": float(v)}
                for t, c, v in zip(part.time, part.code, part.value, strict=True)
            ]
            body = {"observations": rows} | ({"static": static} if k == 0 else {})
            answer = client.post(f"/v1/patients/s{sid}/observations", json=body, headers=AUTH)
            assert answer.status_code == 200, answer.text
        state = client.get(f"/v1/patients/s{sid}", headers=AUTH).json()
        assert abs(state["risk"] - float(bundle.predict(data, np.array([sid]))[0])) <= TOL
        odd = {"observations": [{"time": 47.5, "code": "NotAVariable", "value": 1.0}]}
        skipped = client.post(f"/v1/patients/s{sid}/observations", json=odd, headers=AUTH)
        assert skipped.json()["skipped"] == [{"index": 0, "code": "NotAVariable",
                                              "reason": "unknown_code"}]  # fmt: skip
        fhir = {"resourceType": "Bundle", "type": "collection", "entry": []}
        refused = client.post("/v1/patients/f1/observations", json=fhir, headers=AUTH)
        assert refused.status_code == 422 and "not a FHIR Bundle" in refused.text
        unknown = {"observations": [], "static": {"Shoe size": 44.0}}
        bad = client.post("/v1/patients/f2/observations", json=unknown, headers=AUTH)
        assert bad.status_code == 422 and "Shoe size" in bad.text
        card = client.get("/v1/model", headers=AUTH)
        assert card.status_code == 200, card.text


def test_the_matrix_shows_flat_icu_streaming_and_federated():
    cells = matrix(["flat_icu"])["flat_icu"]
    assert cells["streaming"].supported and cells["federated"].supported
