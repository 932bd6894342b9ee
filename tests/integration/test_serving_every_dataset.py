"""``POST /v1/predict`` for a bundle of every dataset, on real data.

Each bundle is trained small here (a few real subjects, one epoch) through the dataset's own
spec (fit_featurizer, transform, model_sizes). For each: the service starts, a body made
from real subjects is answered with the probabilities ``bundle.predict_arrays(
spec.transform(...))`` gives offline for the same subjects (1e-6), malformed bodies are a 4xx
naming the field, and the streaming routes of a dataset without streaming answer 404 with
the spec's sentence.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from medseq.bundle import Bundle, load_bundle, save_bundle
from medseq.datasets import get_dataset
from medseq.models import build_model, model_config_from_dict
from medseq.paths import dataset_dir
from medseq.schema import Signal
from medseq.serving.api import create_app
from medseq.serving.settings import ServeSettings

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TOL = 1e-6


def _tiny_bundle(out: Path, name: str, task: str, data, ids, features: dict, model: dict):
    """A one-epoch bundle of ``name`` trained on ``ids`` through the spec's hooks."""
    from medseq.training import TrainConfig, Trainer

    spec = get_dataset(name)
    labels = spec.labels(task, data)
    featurizer = spec.fit_featurizer(features, data, ids)
    arrays = spec.transform(featurizer, data, ids)
    arrays["y"] = labels.loc[ids].to_numpy(np.float32)
    kind = spec.task_type(task)
    names = spec.class_names(task, data) if spec.class_names else []
    n_outputs = len(names) if kind in ("multiclass", "multilabel") else 1
    sizes = spec.model_sizes(featurizer)
    config = model_config_from_dict({**model, "n_outputs": n_outputs, **sizes})
    torch_model = build_model(config)
    train = TrainConfig(task=kind, epochs=1, batch_size=32, patience=None, progress=False)
    trainer = Trainer(train)
    trainer.fit(torch_model, arrays, arrays)
    bundle = Bundle(
        config, featurizer, [torch_model], task=kind, threshold=0.5 if kind == "binary" else None,
        provenance={"dataset": name, "task": task}, class_names=names or None,
    )  # fmt: skip
    save_bundle(bundle, out)
    return out


@pytest.fixture(scope="module")
def client_of(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    clients = []

    def make(bundle_dir: Path):
        settings = ServeSettings(tokens=(TOKEN,), max_body_bytes=16 << 20)
        client = TestClient(create_app(bundle_dir, settings))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _offline(bundle_dir: Path, data, ids) -> np.ndarray:
    bundle = load_bundle(bundle_dir)
    spec = get_dataset(bundle.provenance["dataset"])
    scores = bundle.predict_arrays(spec.transform(bundle.featurizer, data, np.asarray(ids)))
    return np.asarray(scores).reshape(len(ids), -1)


def _served(client, body: dict) -> tuple[dict, np.ndarray]:
    answer = client.post("/v1/predict", json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text
    out = answer.json()
    got = np.array([p["probabilities"] for p in out["predictions"]], dtype=np.float64)
    return out, got


def _refused(client, body, loc: list) -> dict:
    answer = client.post("/v1/predict", json=body, headers=AUTH)
    assert 400 <= answer.status_code < 500, answer.text
    detail = answer.json()["detail"]
    assert any(e["loc"][: len(loc)] == loc for e in detail), detail
    return detail


def _no_streaming(client, dataset: str) -> None:
    """The per-observation routes answer 404 naming the dataset; where the matrix's
    streaming cell is a gap, both stream routes answer with the matrix's own sentence."""
    from medseq.capabilities import matrix

    answer = client.get("/v1/patients/p1", headers=AUTH)
    assert answer.status_code == 404
    assert dataset in answer.json()["detail"] and "streaming" in answer.json()["detail"]
    found = matrix([dataset])[dataset]["streaming"]
    if not found.supported:
        signals = client.get("/v1/streams/s1", headers=AUTH)
        assert signals.status_code == 404
        for detail in (answer.json()["detail"], signals.json()["detail"]):
            assert found.reason in detail, (detail, found.reason)


# -- PhysioNet 2012 ---------------------------------------------------------------------


def test_physionet2012_events_body_matches_offline(trained_gru_bundle, set_b, client_of):
    client = client_of(trained_gru_bundle)
    ids = set_b.static.index.to_numpy()[700:703]
    patients = []
    for sid in ids:
        events = set_b.events[set_b.events.subject_id == sid]
        rows = zip(events.time, events.code, events.value, strict=True)
        static = {k: float(v) for k, v in set_b.static.loc[sid].items() if v == v}
        patients.append(
            {
                "patient_id": f"s{sid}",
                "static": static,
                "events": [{"time": float(t), "code": c, "value": float(v)} for t, c, v in rows],
            }
        )
    out, got = _served(client, {"patients": patients})
    assert out["class_names"] == ["mortality"] and out["task"] == "binary"
    np.testing.assert_allclose(got, _offline(trained_gru_bundle, set_b, ids), atol=TOL, rtol=0)
    _refused(client, {"patients": [{"patient_id": "a", "events": [{"time": "x"}]}]},
             ["body", "patients", 0, "events", 0])  # fmt: skip
    _refused(client, {"records": []}, ["body", "records"])


# -- CinC 2017 (beats + rhythm summaries: the bundle whose start-up used to crash) ------


@pytest.fixture(scope="module")
def cinc():
    from medseq.datasets import cinc2017

    return cinc2017.read(dataset_dir("physionet2017"), max_records=12)


@pytest.fixture(scope="module")
def cinc_bundle(cinc, tmp_path_factory):
    ids = cinc.labels.index.to_numpy()[:10]
    model = {"kind": "conv_rnn", "conv_channels": [], "conv_strides": [], "hidden_size": 8}
    features = {"kind": "beats", "rhythm_summary": True}
    return _tiny_bundle(
        tmp_path_factory.mktemp("cinc"), "cinc2017", "rhythm", cinc, ids, features, model
    )


def _record(signal: Signal, name: str) -> dict:
    return {
        "record_id": name,
        "fs_hz": float(signal.fs_hz),
        "samples": signal.samples.T.astype(np.float64).tolist(),
        "channel_names": list(signal.channel_names),
    }


def test_cinc2017_arrays_and_fhir_match_offline(cinc, cinc_bundle, client_of):
    client = client_of(cinc_bundle)
    ids = cinc.labels.index.to_numpy()[10:12]
    expected = _offline(cinc_bundle, cinc, ids)
    body = {"records": [_record(cinc.signals[int(i)], f"A{i:05d}") for i in ids]}
    out, got = _served(client, body)
    assert out["class_names"] == ["N", "A", "O", "~"] and out["task"] == "multiclass"
    np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)
    assert [p["predicted"] for p in out["predictions"]] == [
        [out["class_names"][int(k)]] for k in expected.argmax(axis=1)
    ]
    signal = cinc.signals[int(ids[0])]
    digits = np.round(signal.samples[:, 0].astype(np.float64) * 1000).astype(int)
    assert np.allclose(digits / 1000, signal.samples[:, 0], atol=1e-6)  # stored in 1 µV steps
    _, got_fhir = _served(client, _sampled_bundle(f"A{ids[0]:05d}", signal.fs_hz, digits))
    np.testing.assert_allclose(got_fhir[0], expected[0], atol=1e-5, rtol=0)
    _refused(client, {"records": [{"record_id": "r", "fs_hz": -1, "samples": [1.0]}]},
             ["body", "records", 0, "fs_hz"])  # fmt: skip
    _refused(client, {"records": [{"record_id": "r", "fs_hz": 300, "samples": [[1.0], [1.0, 2]]}]},
             ["body", "records", 0, "samples"])  # fmt: skip
    bad = _sampled_bundle("x", 300.0, np.arange(10))
    bad["entry"][0]["resource"]["valueSampledData"]["data"] = "1 2 x"
    _refused(client, bad, ["body", "entry", 0, "resource", "valueSampledData", "data"])
    # A record too short for the featurizer's filters: 422 at that record's samples, named.
    short = {"record_id": "short", "fs_hz": 300, "samples": [0.1, 0.2, 0.1, 0.0, -0.1, 0.0]}
    detail = _refused(client, {"records": [body["records"][0], short]},
                      ["body", "records", 1, "samples"])  # fmt: skip
    assert "refused item 1 ('short')" in detail[0]["msg"]
    short_fhir = _sampled_bundle("short", 300.0, np.array([-127, -162, -197, -229, -245, -250]))
    _refused(client, short_fhir, ["body", "entry", 0, "resource", "valueSampledData"])
    _no_streaming(client, "cinc2017")


def _sampled_bundle(name: str, fs_hz: float, digits: np.ndarray) -> dict:
    sampled = {
        "origin": {"value": 0},
        "period": 1000.0 / fs_hz,
        "factor": 0.001,
        "dimensions": 1,
        "data": " ".join(str(int(d)) for d in digits),
    }
    observation = {
        "resourceType": "Observation",
        "id": name,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "131328"}]},
        "valueSampledData": sampled,
    }
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": observation}]}


# -- MIT-BIH -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mit():
    from medseq.datasets import mitbih

    return mitbih.read_records(dataset_dir("mitdb_full"), ("100",))


def test_mitbih_beats_body_matches_offline(mit, client_of, tmp_path):
    from medseq.datasets.mitbih import MitbihData
    from medseq.features.signals.beats import beat_annotations

    ids = mit.beats.index.to_numpy()[:400]
    features = {"context_beats": 2, "segment_fs_hz": 25.0}
    model = {"kind": "conv_rnn", "conv_channels": [], "conv_strides": [], "hidden_size": 8,
             "pooling": "last"}  # fmt: skip
    bundle_dir = _tiny_bundle(tmp_path / "b", "mitbih", "beat", mit, ids, features, model)
    client = client_of(bundle_dir)
    # The first minute of record 100, with its reference R peaks, as a client would send it.
    full = mit.signals["100"]
    n = int(60 * full.fs_hz)
    positions, _ = beat_annotations(full)
    keep = positions < n
    crop = Signal("100", full.samples[:n], full.fs_hz, full.channel_names, full.units,
                  positions[keep], ("N",) * int(keep.sum()))  # fmt: skip
    beats = [3, 10, 20]
    body = {"records": [{**_record(crop, "100"), "r_peaks": positions[keep].tolist(),
                         "beats": beats}]}  # fmt: skip
    out, got = _served(client, body)
    assert out["class_names"] == ["N", "S", "V", "F"]
    assert [p["id"] for p in out["predictions"]] == [f"100/{b}" for b in beats]
    table = mit.beats.iloc[:0].copy()
    for b in beats:
        table.loc[b] = {"record": "100", "index": b, "label": 0}
    offline = MitbihData(signals={"100": crop}, beats=table, report=mit.report)
    np.testing.assert_allclose(got, _offline(bundle_dir, offline, beats), atol=TOL, rtol=0)
    _refused(client, {"records": [{**body["records"][0], "r_peaks": None}]},
             ["body", "records", 0, "r_peaks"])  # fmt: skip
    _refused(client, {"records": [{**body["records"][0], "beats": [10**4]}]},
             ["body", "records", 0, "beats"])  # fmt: skip
    fhir = _sampled_bundle("100", 360.0, np.arange(10))
    assert "R-peak" in str(_refused(client, fhir, ["body", "resourceType"]))
    _no_streaming(client, "mitbih")


# -- Tox21 -------------------------------------------------------------------------------


def test_tox21_smiles_body_matches_offline(client_of, tmp_path):
    pytest.importorskip("rdkit")
    spec = get_dataset("tox21")
    data = spec.read(dataset_dir("tox21"))
    ids = data.canonical.index.to_numpy()[:300]
    model = {"kind": "smiles_rnn", "embedding_size": 8, "hidden_size": 8, "attention_size": 8}
    bundle_dir = _tiny_bundle(tmp_path / "b", "tox21", "toxicity", data, ids, {}, model)
    client = client_of(bundle_dir)
    chosen = data.canonical.index.to_numpy()[300:304]
    body = {"molecules": [{"id": f"m{i}", "smiles": data.raw.smiles.loc[i]} for i in chosen]}
    out, got = _served(client, body)
    assert out["task"] == "multilabel" and len(out["class_names"]) == 12
    np.testing.assert_allclose(got, _offline(bundle_dir, data, chosen), atol=TOL, rtol=0)
    _refused(client, {"molecules": [{"id": "m", "smiles": ""}]}, ["body", "molecules", 0, "smiles"])
    _refused(client, {"molecules": [{"id": "m"}]}, ["body", "molecules", 0, "smiles"])
    _no_streaming(client, "tox21")


# -- AdrenalMNIST3D ----------------------------------------------------------------------


def test_adrenal_volume_body_matches_offline(client_of, tmp_path, caplog):
    spec = get_dataset("adrenalmnist3d")
    data = spec.read(dataset_dir("adrenalmnist3d"))
    ids = data.ids("train")[:64]
    model = {"kind": "slice_rnn", "channels": [4], "slice_embedding_size": 8, "hidden_size": 8}
    bundle_dir = _tiny_bundle(tmp_path / "b", "adrenalmnist3d", "adrenal", data, ids, {}, model)
    with caplog.at_level("WARNING", logger="medseq.serving.api"):
        client = client_of(bundle_dir)
    assert any("streaming routes disabled" in r.getMessage() for r in caplog.records)
    chosen = data.ids("test")[:2]
    body = {"volumes": [{"id": f"v{i}", "voxels": data.images[i].tolist()} for i in chosen]}
    out, got = _served(client, body)
    assert out["task"] == "binary" and out["threshold"] == 0.5
    np.testing.assert_allclose(got, _offline(bundle_dir, data, chosen), atol=TOL, rtol=0)
    small = data.images[chosen[0]][:10, :10, :10].tolist()
    detail = _refused(client, {"volumes": [{"id": "v", "voxels": small}]},
                      ["body", "volumes", 0, "voxels"])  # fmt: skip
    assert "28" in detail[0]["msg"]
    _no_streaming(client, "adrenalmnist3d")
    card = client.get("/v1/model", headers=AUTH).json()
    assert card["dataset"] == "adrenalmnist3d" and card["request"]["request"]["modality"]
    assert "read whole" in card["streaming"]["reason"]
    openapi = client.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]
    examples = openapi["requestBody"]["content"]["application/json"]["examples"]
    assert examples["request"]["value"]["volumes"][0]["id"] == "scan-1"


# -- MIMIC-III demo ----------------------------------------------------------------------


def test_mimic3_visits_and_fhir_match_offline(client_of, tmp_path):
    from medseq.tasks.histories import VISIT_ID_FACTOR, visit_codes

    spec = get_dataset("mimic3")
    data = spec.read(dataset_dir("mimic3demo"))
    labels = spec.labels("next_visit", data)
    ids = labels.index.to_numpy()
    model = {"kind": "doctorai", "embedding_size": 8, "hidden_size": 8}
    features = {"level": "three_digit"}
    bundle_dir = _tiny_bundle(tmp_path / "b", "mimic3", "next_visit", data, ids, features, model)
    client = client_of(bundle_dir)
    chosen = ids[:3]
    codes = visit_codes(data.history)
    patients = []
    for sample in chosen:
        subject, k = divmod(int(sample), VISIT_ID_FACTOR)
        mine = codes[codes.subject_id == subject]
        visits = [{"codes": mine[mine.visit == v].code.tolist()} for v in range(k)]
        patients.append({"patient_id": f"s{sample}", "visits": visits})
    out, got = _served(client, {"patients": patients})
    assert out["task"] == "multilabel"
    np.testing.assert_allclose(got, _offline(bundle_dir, data, chosen), atol=TOL, rtol=0)
    # FHIR carries the diagnoses, procedures and NDC prescriptions (not the admission type).
    fhir_codes = ("ICD9DX/", "ICD9PX/", "NDC/")
    visits = patients[0]["visits"]
    kept = [{"codes": [c for c in v["codes"] if c.startswith(fhir_codes)]} for v in visits]
    coded = {**patients[0], "visits": kept}
    _, got_coded = _served(client, {"patients": [coded]})
    _, got_fhir = _served(client, _visits_fhir(coded))
    np.testing.assert_allclose(got_fhir[0], got_coded[0], atol=TOL, rtol=0)
    _refused(client, {"patients": [{"patient_id": "p", "visits": [{"codes": ["4019"]}]}]},
             ["body", "patients", 0, "visits", 0, "codes"])  # fmt: skip
    _refused(client, {"patients": [{"patient_id": "p", "visits": []}]},
             ["body", "patients", 0, "visits"])  # fmt: skip
    _no_streaming(client, "mimic3")


def test_meds_visits_body_matches_offline(client_of, tmp_path):
    """A `meds` bundle (visit histories read from a MEDS export, here MIMIC-III demo written
    as MEDS) answers the same codes-per-visit body as offline prediction, here for the
    chapter-level next-visit task."""
    from medseq.sources import meds, mimic3
    from medseq.tasks.histories import VISIT_ID_FACTOR, visit_codes

    spec = get_dataset("meds")
    root = meds.write(mimic3.read(dataset_dir("mimic3demo")), tmp_path / "meds")
    data = spec.read(root)
    task = "next_visit_chapter"
    ids = spec.labels(task, data).index.to_numpy()
    model = {"kind": "doctorai", "embedding_size": 8, "hidden_size": 8}
    features = {"level": "chapter"}
    bundle_dir = _tiny_bundle(tmp_path / "b", "meds", task, data, ids, features, model)
    client = client_of(bundle_dir)
    chosen = ids[:3]
    codes = visit_codes(data.history)
    patients = []
    for sample in chosen:
        subject, k = divmod(int(sample), VISIT_ID_FACTOR)
        mine = codes[codes.subject_id == subject]
        visits = [{"codes": mine[mine.visit == v].code.tolist()} for v in range(k)]
        patients.append({"patient_id": f"s{sample}", "visits": visits})
    out, got = _served(client, {"patients": patients})
    assert out["task"] == "multilabel" and len(out["class_names"]) == got.shape[1] > 1
    np.testing.assert_allclose(got, _offline(bundle_dir, data, chosen), atol=TOL, rtol=0)
    _refused(client, {"patients": [{"patient_id": "p", "visits": [{"codes": ["4019"]}]}]},
             ["body", "patients", 0, "visits", 0, "codes"])  # fmt: skip
    _no_streaming(client, "meds")
    _reported(bundle_dir, root, tmp_path, "meds", task)  # the meds report cell's test


def _reported(bundle_dir: Path, data_path: Path, tmp_path: Path, dataset: str, task: str):
    """``medseq report`` on a copy of the bundle (the report stores its model card in it):
    the HTML names the dataset and the task the bundle records."""
    import shutil

    from typer.testing import CliRunner

    from medseq.cli import app

    target, out = tmp_path / "reported", tmp_path / "report.html"
    shutil.copytree(bundle_dir, target)
    args = ["report", str(target), "--data", str(data_path), "--n-boot", "20", "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    html = " ".join(out.read_text().split())
    assert f"dataset {dataset}" in html and task in html


def _visits_fhir(patient: dict) -> dict:
    """The visits of a codes-per-visit body as FHIR Encounters, Conditions, Procedures and
    MedicationRequests (other codes, e.g. the admission type, have no resource here)."""
    pid, entries = patient["patient_id"], []
    subject = {"reference": f"Patient/{pid}"}
    for v, visit in enumerate(patient["visits"]):
        eid = f"e{v}"
        entries.append({"resource": {
            "resourceType": "Encounter", "id": eid, "status": "finished", "subject": subject,
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "period": {"start": f"2100-01-{v + 1:02d}T00:00:00+00:00"}}})  # fmt: skip
        for code in visit["codes"]:
            kind, _, value = code.partition("/")
            system = "http://hl7.org/fhir/sid/icd-9-cm"
            if kind == "ICD9DX":
                resource = {"resourceType": "Condition", "code": {"coding": [
                    {"system": system, "code": value}]}}  # fmt: skip
            elif kind == "ICD9PX":
                resource = {"resourceType": "Procedure", "status": "completed", "code": {
                    "coding": [{"system": system, "code": value}]}}  # fmt: skip
            elif kind == "NDC":
                ndc = {"coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": value}]}
                resource = {"resourceType": "MedicationRequest", "status": "completed",
                            "intent": "order", "medicationCodeableConcept": ndc}  # fmt: skip
            else:
                continue
            encounter = {"reference": f"Encounter/{eid}"}
            entries.append({"resource": {**resource, "subject": subject, "encounter": encounter}})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


BLOCKED_RUN = """
import importlib.abc, json, sys, warnings
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"sklearn", "scipy", "wfdb"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
warnings.simplefilter("ignore")
from fastapi.testclient import TestClient
from medseq.serving.api import create_app
from medseq.serving.settings import ServeSettings
token = "test-token-0123456789abcdef"
app = create_app(sys.argv[1], ServeSettings(tokens=(token,)))
with TestClient(app) as client:
    body = {"records": [{"record_id": "r1", "fs_hz": 300, "samples": [0.0] * 3000}]}
    answer = client.post("/v1/predict", json=body, headers={"Authorization": f"Bearer {token}"})
    print(json.dumps({"status": answer.status_code, "body": answer.json()}))
"""


def test_a_bundle_needing_wfdb_starts_without_it_and_names_the_extra(cinc_bundle):
    """As in the serve-only install (no scipy, wfdb): the service starts; the XQRS beat
    bundle's predictions answer 503 naming the extra to install, not a traceback."""
    import json
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN, str(cinc_bundle)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["status"] == 503, out
    assert "pip install 'medseq[train]'" in out["body"]["detail"]
    assert "Traceback" not in run.stderr


def test_bonn_eeg_segment_body_matches_offline(client_of, tmp_path):
    from medseq.datasets import bonn_eeg

    data = bonn_eeg.read(dataset_dir("bonn_eeg"))
    ids = data.sets.index.to_numpy()[::50][:10]  # segments of every set
    features = {"target_fs_hz": 173.61, "low_hz": 0.5, "high_hz": 40.0}
    model = {"kind": "conv_rnn", "conv_channels": [4], "conv_strides": [4], "hidden_size": 8}
    bundle_dir = _tiny_bundle(tmp_path / "b", "bonn_eeg", "five_set", data, ids, features, model)
    client = client_of(bundle_dir)
    expected = _offline(bundle_dir, data, ids[:3])
    body = {"records": [_record(data.signals[int(i)], f"seg-{i}") for i in ids[:3]]}
    out, got = _served(client, body)
    assert out["class_names"] == list(bonn_eeg.SETS) and out["task"] == "multiclass"
    np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)
    two_leads = _record(data.signals[int(ids[0])], "x")
    two_leads["samples"] = [two_leads["samples"][0], two_leads["samples"][0]]
    del two_leads["channel_names"]
    _refused(client, {"records": [two_leads]}, ["body", "records", 0, "samples"])
    _no_streaming(client, "bonn_eeg")


# -- the bodies documented in docs/serving.md ---------------------------------------------

SERVING_DOC = Path(__file__).resolve().parents[2] / "docs" / "serving.md"


def _documented_body(heading: str) -> dict:
    """The first JSON block under ``### {heading}`` of docs/serving.md."""
    import json
    import re

    text = SERVING_DOC.read_text()
    start = text.index(f"### {heading}\n")
    block = re.compile(r"```json\n(.*?)```", re.S).search(text, start)
    assert block is not None and "\n### " not in text[start + 4 : block.start()], heading
    return json.loads(block.group(1))


def _answers(client, body: dict) -> dict:
    answer = client.post("/v1/predict", json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text
    out = answer.json()
    assert len(out["predictions"]) >= 1 and out["model_version"]
    return out


def test_documented_icu_bodies_are_answered(trained_gru_bundle, client_of):
    """The event-table and FHIR bodies docs/serving.md shows for ICU stays, posted as they
    are, get a prediction (a documented body that the service refuses is a broken doc)."""
    client = client_of(trained_gru_bundle)
    events = _answers(client, _documented_body("ICU stays (PhysioNet 2012): event table"))
    assert events["predictions"][0]["n_events_used"] == 3
    fhir = _answers(client, _documented_body("ICU stays: FHIR R4 Bundle of Observations"))
    assert fhir["predictions"][0]["n_events_used"] >= 1


def test_documented_visit_bodies_are_answered(client_of, tmp_path):
    spec = get_dataset("mimic3")
    data = spec.read(dataset_dir("mimic3demo"))
    ids = spec.labels("next_visit", data).index.to_numpy()
    model = {"kind": "doctorai", "embedding_size": 8, "hidden_size": 8}
    features = {"level": "three_digit"}
    bundle_dir = _tiny_bundle(tmp_path / "b", "mimic3", "next_visit", data, ids, features, model)
    client = client_of(bundle_dir)
    _answers(client, _documented_body("Visit histories (MIMIC-III, MEDS): codes per visit"))
    heading = "Visit histories: FHIR Encounter, Condition, Procedure, MedicationRequest"
    _answers(client, _documented_body(heading))


def test_documented_smiles_body_is_answered(client_of, tmp_path):
    pytest.importorskip("rdkit")
    spec = get_dataset("tox21")
    data = spec.read(dataset_dir("tox21"))
    ids = data.canonical.index.to_numpy()[:300]
    model = {"kind": "smiles_rnn", "embedding_size": 8, "hidden_size": 8, "attention_size": 8}
    bundle_dir = _tiny_bundle(tmp_path / "b", "tox21", "toxicity", data, ids, {}, model)
    out = _answers(client_of(bundle_dir), _documented_body("Molecules (Tox21): SMILES"))
    assert [p["id"] for p in out["predictions"]] == ["aspirin", "caffeine"]
