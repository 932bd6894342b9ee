"""MIT-BIH + SVDB bundles served and federated, on real records.

REST: a bundle trained at 128 Hz (one epoch on SVDB record 800 and the first five minutes
of MIT-BIH record 100) answers that MIT-BIH record posted at its own 360 Hz with the beat
probabilities and labels ``medseq predict`` writes for the same record read from a WFDB
folder: the request is resampled by the code training used. A body without a rate, or
whose leads hold no primary lead, is a 422 naming the field.

Federated: the ``databases`` partition puts MIT-BIH and SVDB at two sites, records whole,
DS2 at none; a two-round ``medseq federate simulate`` run trains a bundle that evaluates.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from data_slices import write_mitbih_crop
from medseq.cli import app
from medseq.datasets.mitbih import BEAT_CLASSES, ID_STRIDE
from medseq.datasets.registry import get_dataset
from medseq.paths import dataset_dir
from medseq.sources import wfdb_records

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FEATURES = {"lead": "ECG1", "morphology": "none", "local_ratios": False, "context_beats": 2}
MODEL = {"kind": "conv_rnn", "conv_channels": [], "conv_strides": [], "hidden_size": 8,
         "cell": "gru", "pooling": "last"}  # fmt: skip
MINUTES = 5
runner = CliRunner()


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """``svdb/`` with record 800 and ``mitdb_full/`` with the first minutes of record 100."""
    base = tmp_path_factory.mktemp("svdb_root")
    svdb, mitdb = base / "svdb", base / "mitdb_full"
    svdb.mkdir()
    mitdb.mkdir()
    for suffix in (".hea", ".atr", ".dat.xz"):
        (svdb / f"800{suffix}").symlink_to(dataset_dir("svdb") / f"800{suffix}")
    (svdb / "RECORDS").write_text("800\n")
    write_mitbih_crop(mitdb, "100", MINUTES)
    (mitdb / "RECORDS").write_text("100\n")
    return svdb


@pytest.fixture(scope="module")
def bundle_dir(root, tmp_path_factory) -> Path:
    """One epoch on every beat of the two records, through the spec's own hooks."""
    from medseq.bundle import Bundle, save_bundle
    from medseq.models import build_model, model_config_from_dict
    from medseq.training import TrainConfig, Trainer

    spec = get_dataset("mitbih_svdb")
    data = spec.read(root)
    labels = spec.labels("beat", data)
    ids = labels.index.to_numpy()
    featurizer = spec.fit_featurizer(dict(FEATURES), data, ids)
    arrays = spec.transform(featurizer, data, ids)
    arrays["y"] = labels.loc[ids].to_numpy(np.float32)
    config = model_config_from_dict({**MODEL, "n_outputs": 4, **spec.model_sizes(featurizer)})
    model = build_model(config)
    train = TrainConfig(task="multiclass", epochs=1, batch_size=64, patience=None, progress=False)
    Trainer(train).fit(model, arrays, arrays)
    bundle = Bundle(
        config, featurizer, [model], task="multiclass", threshold=None,
        provenance={"dataset": "mitbih_svdb", "task": "beat"}, class_names=list(BEAT_CLASSES),
    )  # fmt: skip
    out = tmp_path_factory.mktemp("bundle") / "bundle"
    save_bundle(bundle, out)
    return out


@pytest.fixture(scope="module")
def client(bundle_dir):
    from medseq.serving.api import create_app
    from medseq.serving.settings import ServeSettings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    settings = ServeSettings(tokens=(TOKEN,), max_body_bytes=16 << 20)
    with TestClient(create_app(bundle_dir, settings)) as test_client:
        yield test_client


def _body(root: Path) -> dict:
    """Record 100 (the crop) as a client sends it: 360 Hz, MLII and V5, its R peaks."""
    from medseq.features.signals.beats import beat_annotations

    raw = wfdb_records.read_record(root.parent / "mitdb_full", "100")
    assert raw.fs_hz == 360.0 and raw.channel_names == ("MLII", "V5")
    positions, _ = beat_annotations(raw)
    return {
        "records": [
            {
                "record_id": "100",
                "fs_hz": 360,
                "samples": raw.samples.T.tolist(),
                "channel_names": list(raw.channel_names),
                "r_peaks": positions.tolist(),
            }
        ]
    }


def test_a_360_hz_mitbih_record_gets_the_labels_of_medseq_predict(
    root, bundle_dir, client, tmp_path
):
    out = tmp_path / "predictions.csv"
    result = runner.invoke(app, ["predict", str(bundle_dir), "--data", str(root), "-o", str(out)])
    assert result.exit_code == 0, result.output
    offline = pd.read_csv(out)
    offline = offline[offline["subject_id"] // ID_STRIDE == 100].set_index("subject_id")
    body = _body(root)
    answer = client.post("/v1/predict", json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text
    served = answer.json()["predictions"]
    assert len(served) == len(offline) == len(body["records"][0]["r_peaks"]) > 300
    ids = [100 * ID_STRIDE + int(p["id"].split("/")[1]) for p in served]
    probabilities = np.array([p["probabilities"] for p in served])
    expected = offline.loc[ids, [f"p_{c}" for c in BEAT_CLASSES]].to_numpy()
    np.testing.assert_allclose(probabilities, expected, atol=1e-6, rtol=0)
    labels = [BEAT_CLASSES[k] for k in probabilities.argmax(axis=1)]
    assert labels == offline.loc[ids, "prediction"].tolist()


def _refused(client, body: dict, field: str) -> str:
    answer = client.post("/v1/predict", json=body, headers=AUTH)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    hits = [e for e in detail if e["loc"][:4] == ["body", "records", 0, field]]
    assert hits, detail
    return str(hits[0]["msg"])


def test_a_body_without_rate_or_primary_lead_is_refused_naming_the_field(root, client):
    record = _body(root)["records"][0]
    short = {**record, "samples": [row[:3600] for row in record["samples"]],
             "r_peaks": [p for p in record["r_peaks"] if p < 3600]}  # fmt: skip
    no_rate = {k: v for k, v in short.items() if k != "fs_hz"}
    _refused(client, {"records": [no_rate]}, "fs_hz")
    message = _refused(client, {"records": [{**short, "channel_names": ["V5", "V1"]}]},
                       "channel_names")  # fmt: skip
    assert "MLII" in message and "V5" in message
    unnamed = {k: v for k, v in short.items() if k != "channel_names"}
    assert "MLII" in _refused(client, {"records": [unnamed]}, "channel_names")
    # SVDB's lead names at SVDB's rate are read as they are
    svdb = wfdb_records.read_record(root, "800")
    crop = svdb.samples[:1280].T.tolist()
    peaks = [int(p) for p in svdb.annotation_samples if p < 1280]
    body = {"records": [{"record_id": "800", "fs_hz": 128, "samples": crop,
                         "channel_names": ["ECG1", "ECG2"], "r_peaks": peaks}]}  # fmt: skip
    ok = client.post("/v1/predict", json=body, headers=AUTH)
    assert ok.status_code == 200, ok.text
    assert len(ok.json()["predictions"]) == len(peaks)


# -- streaming ---------------------------------------------------------------------------


def _mlii(root: Path):
    raw = wfdb_records.read_record(root.parent / "mitdb_full", "100")
    return raw, raw.samples[:, raw.channel_names.index("MLII")].astype(np.float64)


def _run(detector, x: np.ndarray, sizes) -> list:
    beats, i = [], 0
    for n in sizes:
        if i >= len(x):
            break
        beats += detector.push(x[i : i + n]).beats
        i += n
    return beats


def test_the_stream_resampler_gives_the_training_resampler_s_samples(root):
    from medseq.datasets.mitbih_svdb import harmonise_named
    from medseq.monitoring.resampled import StreamingResampler

    raw, x = _mlii(root)
    trained = harmonise_named(raw).samples[:, 0]  # what the bundle was fitted on
    rng = np.random.default_rng(0)
    resampler, parts, i = StreamingResampler(360.0, 128.0), [], 0
    while i < len(x):
        n = int(rng.integers(1, 2000))
        parts.append(resampler.push(x[i : i + n]))
        i += n
    y = np.concatenate(parts)
    assert len(trained) - 12 <= len(y) < len(trained)  # the last ~86 ms wait for more input
    np.testing.assert_allclose(y, trained[: len(y)], rtol=0, atol=1e-6)  # float32 rounding


def test_a_360_hz_stream_equals_its_128_hz_record_fed_at_once(root, bundle_dir):
    from medseq.datasets.mitbih_svdb import harmonise_named
    from medseq.monitoring.beat_model import BeatClassifier
    from medseq.monitoring.detector import StreamDetector
    from medseq.monitoring.resampled import ResampledDetector

    part = get_dataset("mitbih_svdb").signal_streaming
    make, _ = part.detector_factory(bundle_dir)
    raw, x = _mlii(root)
    assert isinstance(make(360.0), ResampledDetector)
    assert isinstance(make(128.0), StreamDetector)
    at_128 = harmonise_named(raw).samples[:, 0]
    batch = StreamDetector(BeatClassifier.from_bundle(bundle_dir), 128.0).push(at_128).beats
    rng = np.random.default_rng(1)
    for sizes in ([len(x)], [360] * (len(x) // 360 + 1), rng.integers(1, 1500, size=len(x))):
        streamed = _run(make(360.0), x, sizes)
        assert len(batch) - 2 <= len(streamed) <= len(batch) and len(streamed) > 300
        got, want = streamed, batch[: len(streamed)]
        assert [b.time_s for b in got] == [b.time_s for b in want]
        assert [b.label for b in got] == [b.label for b in want]
        np.testing.assert_allclose(
            [b.probabilities for b in got], [b.probabilities for b in want], atol=1e-9
        )
        # on the stream's clock: the 360 Hz sample of each R peak
        assert [b.sample for b in got] == [round(b.sample * 360 / 128) for b in want]
    # the R peaks found are the reference beats (within 50 ms), at the stream's rate
    reference = _body(root)["records"][0]["r_peaks"]
    near = [min(abs(b.sample - r) for r in reference) for b in streamed]
    assert np.mean(np.array(near) <= 18) > 0.95


def test_a_resampled_stream_checkpoints_and_resumes_exactly(root, bundle_dir):
    from medseq.serving.signal_state import restore, snapshot

    make, _ = get_dataset("mitbih_svdb").signal_streaming.detector_factory(bundle_dir)
    _, x = _mlii(root)
    x = x[: 360 * 90]
    whole = _run(make(360.0), x, [997] * 40)
    first = make(360.0)
    cut = 997 * 17
    before = _run(first, x[:cut], [997] * 17)
    state, blob = snapshot(first, make(360.0))
    resumed = restore(make(360.0), state, blob)
    after = _run(resumed, x[cut:], [997] * 40)
    assert before + after == whole and len(after) > 50


def test_signal_stream_routes_take_a_mitbih_stream_at_360_hz(root, client):
    _, x = _mlii(root)
    put = client.put("/v1/streams/r100", json={"fs_hz": 360, "lead": "MLII"}, headers=AUTH)
    assert put.status_code == 201, put.text
    beats = []
    for i in range(0, 360 * 60, 360):
        body = {"start": i, "fs_hz": 360, "samples": x[i : i + 360].tolist()}
        answer = client.post("/v1/streams/r100/samples", json=body, headers=AUTH)
        assert answer.status_code == 200, answer.text
        beats += answer.json()["beats"]
    assert len(beats) > 60  # record 100 beats about 75 times a minute
    reference = _body(root)["records"][0]["r_peaks"]
    assert all(min(abs(b["sample"] - r) for r in reference) <= 18 for b in beats[1:])
    for body, field in (({"fs_hz": 250}, "fs_hz"), ({"fs_hz": 360, "lead": "V5"}, "lead")):
        refused = client.put("/v1/streams/bad", json=body, headers=AUTH)
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["loc"] == ["body", field]


SVDB_SITE = ("800", "802", "803")
MITDB_SITE = ("101", "119", "100")  # DS1, DS1, DS2


@pytest.fixture(scope="module")
def two_databases(tmp_path_factory) -> Path:
    """Three SVDB records and three MIT-BIH records (two DS1, one DS2), linked."""
    base = tmp_path_factory.mktemp("two_databases")
    for name, records in (("svdb", SVDB_SITE), ("mitdb_full", MITDB_SITE)):
        folder = base / name
        folder.mkdir()
        for record in records:
            for suffix in (".hea", ".atr", ".dat.xz"):
                (folder / f"{record}{suffix}").symlink_to(dataset_dir(name) / f"{record}{suffix}")
        (folder / "RECORDS").write_text("\n".join(records) + "\n")
    return base / "svdb"


def test_databases_partition_puts_each_database_at_its_own_site(two_databases):
    from medseq.federated import parse_federated
    from medseq.federated.sites import partition_of, protocol_test_ids

    experiment = parse_federated(
        {
            "data": {"dataset": "mitbih_svdb", "task": "beat", "train": str(two_databases),
                     "protocol": "inter_patient"},
            "federated": {"rounds": 2, "partition": "databases", "n_sites": 2},
        }
    )  # fmt: skip
    part = partition_of(experiment)
    assert list(part.sites) == ["mitbih", "svdb"]
    records = {name: set((ids // ID_STRIDE).tolist()) for name, ids in part.sites.items()}
    assert records == {"mitbih": {101, 119}, "svdb": {800, 802, 803}}
    assert set((protocol_test_ids(experiment) // ID_STRIDE).tolist()) == {100}  # DS2: no site
    with pytest.raises(ValueError, match="exactly 2 sites"):
        get_dataset("mitbih_svdb").partitions["databases"](
            None, pd.Series([0], index=[80_000_000]), n_sites=3, alpha=1.0, seed=0
        )


@pytest.mark.slow
def test_federated_run_on_the_two_databases_trains_a_bundle_that_evaluates(two_databases, tmp_path):
    pytest.importorskip("ray", reason="Flower's simulation engine needs medseq[federated]")
    config = tmp_path / "fed.toml"
    config.write_text(
        f"""output_dir = "{tmp_path / "run"}"
name = "svdb-tiny"
[data]
dataset = "mitbih_svdb"
task = "beat"
train = "{two_databases}"
protocol = "inter_patient"
[features]
lead = "ECG1"
morphology = "none"
local_ratios = false
context_beats = 2
[model]
kind = "conv_rnn"
conv_channels = []
conv_strides = []
hidden_size = 8
pooling = "last"
[train]
lr = 3e-3
batch_size = 256
[federated]
partition = "databases"
n_sites = 2
rounds = 2
min_fit_clients = 2
"""
    )
    result = runner.invoke(app, ["federate", "simulate", str(config)])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert sorted(saved["sites"]) == ["mitbih", "svdb"]
    assert all(r["n_failures"] == 0 for r in saved["history"]), saved["history"]
    scored = runner.invoke(
        app, ["evaluate", saved["bundle_dir"], "--data", str(two_databases), "--n-boot", "20"]
    )
    assert scored.exit_code == 0, scored.output
    assert "se_V" in scored.output
