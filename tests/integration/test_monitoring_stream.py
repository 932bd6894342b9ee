"""The streaming detector with a trained MIT-BIH beat bundle, on real records.

The bundle is trained by the runner from ``configs/mitbih-beats.toml`` (one seed, three
epochs to keep the test short; DS1 only, as the config says). Streamed in 1-s chunks or
chunks of random size, a record gives the offline pass's R peaks, labels, probabilities
(bit for bit) and alerts; a checkpoint of the former beat context restores the same beat
windows; the numpy GRU equals the bundle's torch model; bad signal suppresses
alerts and says why; the clock is never shifted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from medseq.monitoring.beat_features import UnsupportedBundle
from medseq.monitoring.beat_model import BeatClassifier, read_bundle
from medseq.monitoring.detector import StreamDetector, StreamError
from medseq.monitoring.records import read_record
from medseq.paths import dataset_dir


@pytest.fixture(scope="module")
def beat_bundle(trained_beat_bundle) -> Path:
    """The session's MIT-BIH beat bundle (tests/conftest.py): tests copy it to change it."""
    return trained_beat_bundle


def _record(name: str, minutes: float) -> np.ndarray:
    rec = read_record(dataset_dir("mitdb_full") / name, lead="MLII")
    return rec.samples[: round(minutes * 60 * rec.fs_hz)]


def _stream(bundle: Path, x: np.ndarray, sizes) -> tuple[list, list]:
    detector = StreamDetector(BeatClassifier.from_bundle(bundle), 360.0)
    beats, alerts, i = [], [], 0
    for n in sizes:
        if i >= len(x):
            break
        out = detector.push(x[i : i + n])
        beats += out.beats
        alerts += out.alerts
        i += n
    return beats, alerts


@pytest.mark.parametrize("name", ["200", "232"])
def test_streamed_in_chunks_equals_the_offline_pass(beat_bundle, name):
    x = _record(name, 8)
    offline, offline_alerts = _stream(beat_bundle, x, [len(x)])
    rng = np.random.default_rng(7)
    for sizes in ([360] * (len(x) // 360 + 1), rng.integers(1, 1500, size=len(x))):
        beats, alerts = _stream(beat_bundle, x, sizes)
        assert [b.sample for b in beats] == [b.sample for b in offline]
        assert [b.label for b in beats] == [b.label for b in offline]
        p, q = (
            np.array([b.probabilities for b in beats]),
            np.array([b.probabilities for b in offline]),
        )
        np.testing.assert_array_equal(p, q)  # the same products per beat, however cut
        assert alerts == offline_alerts
    assert len(offline) > 400 and len({b.label for b in offline}) >= 2


def test_numpy_gru_equals_the_bundles_torch_model(beat_bundle):
    import torch

    from medseq.bundle import load_bundle
    from medseq.features.signals.beat_sequence import beat_context
    from medseq.monitoring.beat_features import StreamingBeatFeatures

    classifier = BeatClassifier.from_bundle(beat_bundle)
    features = StreamingBeatFeatures(360.0, classifier.featurizer_state)
    from medseq.monitoring.qrs import StreamingQRSDetector

    x = _record("208", 5)
    _, rows = features.push(x, 0, StreamingQRSDetector(360.0).push(x))
    ours = classifier.push(rows)
    values, lengths = beat_context(rows.astype(np.float32), np.arange(len(rows)), 8)
    bundle = load_bundle(beat_bundle)
    with torch.no_grad():
        theirs = np.mean(
            [
                torch.softmax(m.eval()(torch.tensor(values), torch.tensor(lengths)), -1).numpy()
                for m in bundle.members
            ],
            axis=0,
        )
    assert len(rows) > 300
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_a_checkpoint_of_the_former_beat_context_continues(beat_bundle):
    """Checkpoints written before the beat windows were carried hold ``_context``: the last
    ``context_beats`` input projections ``W_i x + b_i``, gates grouped (r of every member,
    then z, then n), built here from the bundle's own tensors. Restored through the
    service's codec, the detector continues as the uninterrupted one (to the rounding of
    the projection: the old layout multiplied in another order)."""
    from safetensors.numpy import load, save

    from medseq.monitoring.qrs import StreamingQRSDetector
    from medseq.serving.signal_state import restore, snapshot

    manifest, tensors = read_bundle(beat_bundle)
    m = int(manifest["n_members"])
    w = np.stack([tensors[f"m{i}.encoder.rnn.weight_ih_l0"] for i in range(m)]).astype(float)
    b = np.stack([tensors[f"m{i}.encoder.rnn.bias_ih_l0"] for i in range(m)]).astype(float)
    x, half = _record("208", 3), 90 * 360
    whole = StreamDetector(BeatClassifier.from_bundle(beat_bundle), 360.0)
    assert whole.push(x[:half]).beats
    features = StreamDetector(BeatClassifier.from_bundle(beat_bundle), 360.0).features
    _, rows = features.push(x[:half], 0, StreamingQRSDetector(360.0).push(x[:half]))
    c = whole.classifier.context_beats
    gates = np.einsum("nf,mgf->ngm", rows[-c:], w) + b.T[None]  # (C, 3H, M)
    old = gates.reshape(c, 3, -1, m).transpose(0, 1, 3, 2).reshape(c, -1)  # (C, 3MH)

    fresh = StreamDetector(BeatClassifier.from_bundle(beat_bundle), 360.0)
    state_json, blob = snapshot(whole, fresh)
    state = json.loads(state_json)
    state["classifier"] = {"p": {"_context": {"a": "old"}}}  # as the former code wrote it
    restored = restore(fresh, json.dumps(state), save({**load(blob), "old": old}))

    np.testing.assert_allclose(restored.classifier._windows, whole.classifier._windows, atol=1e-12)
    a, r = whole.push(x[half:]), restored.push(x[half:])
    assert len(a.beats) > 100 and [q.label for q in a.beats] == [q.label for q in r.beats]
    np.testing.assert_allclose(
        [q.probabilities for q in a.beats], [q.probabilities for q in r.beats], atol=1e-12
    )


def test_bad_signal_suppresses_alerts_and_says_why(beat_bundle):
    x = _record("200", 4).copy()
    lo, hi = 60 * 360, 75 * 360
    x[lo:hi] += 6.0  # electrode off: the trace leaves the physiological range
    detector = StreamDetector(BeatClassifier.from_bundle(beat_bundle), 360.0)
    outs = [detector.push(x[i : i + 360]) for i in range(0, len(x), 360)]
    quality = [c for o in outs for c in o.quality]
    beats = [b for o in outs for b in o.beats]
    alerts = [a for o in outs for a in o.alerts]
    assert quality[0].state == "bad" and quality[0].reason == "lead_off"
    inside = [b for b in beats if lo <= b.sample < hi]
    assert inside and all(b.quality == "lead_off" for b in inside)
    assert not [a for a in alerts if a.kind == "onset" and 60.0 <= a.reported_s < 75.0]
    # record 200 is in a V run episode before the artefact (bigeminy/V runs): it is cut
    suppressed = [a for a in alerts if a.kind == "suppressed"]
    assert all(a.reason == "lead_off" for a in suppressed)


def test_gap_restarts_on_the_callers_clock_and_overlap_is_refused(beat_bundle):
    x = _record("100", 6)
    detector = StreamDetector(BeatClassifier.from_bundle(beat_bundle), 360.0)
    first = [detector.push(x[i : i + 360]) for i in range(0, 120 * 360, 360)]
    resume = 240 * 360  # two minutes missing
    later = [detector.push(x[i : i + 360], start=i) for i in range(resume, len(x), 360)]
    assert later[0].quality[0].reason == "gap" and later[0].quality[0].sample == resume
    beats_after = [b.sample for o in later for b in o.beats]
    reference = [b.sample for b in _stream(beat_bundle, x, [len(x)])[0]]
    # after the restart, beats sit on the true clock: each is a beat of the offline pass
    assert beats_after and set(beats_after[5:]) <= set(reference)
    assert not [b for o in first for b in o.beats if b.sample >= 120 * 360]
    with pytest.raises(StreamError, match="must not overlap"):
        detector.push(x[:360], start=resume)


def test_bundles_that_cannot_stream_are_refused_with_the_reason(beat_bundle, tmp_path):
    manifest, tensors = read_bundle(beat_bundle)
    shape = json.loads(json.dumps(manifest))
    shape["featurizer"]["qrs_shape"] = True
    with pytest.raises(UnsupportedBundle, match="qrs_shape=True"):
        BeatClassifier(shape, tensors)
    bidirectional = json.loads(json.dumps(manifest))
    bidirectional["model_config"]["bidirectional"] = True
    with pytest.raises(UnsupportedBundle, match="reads the future"):
        BeatClassifier(bidirectional, tensors)
    tampered = tmp_path / "tampered"
    shutil.copytree(beat_bundle, tampered)
    data = json.loads((tampered / "medseq.json").read_text())
    data["featurizer"]["mean"][0] += 1.0
    (tampered / "medseq.json").write_text(json.dumps(data))
    with pytest.raises(UnsupportedBundle, match="content hash mismatch"):
        BeatClassifier.from_bundle(tampered)


def test_monitor_command_replays_a_record_and_prints_alerts(beat_bundle, tmp_path):
    from typer.testing import CliRunner

    from medseq.cli import app

    runner = CliRunner()
    result = runner.invoke(
        app, ["monitor", str(beat_bundle), "--record", str(dataset_dir("mitdb_full") / "200")]
    )
    assert result.exit_code == 0, result.output
    assert "ALERT onset V run" in result.output and "replayed 1805.6 s" in result.output
    samples = "\n".join(f"{v:.4f}" for v in _record("200", 2)) + "\n"
    piped = runner.invoke(
        app, ["monitor", str(beat_bundle), "--record", "-", "--fs", "360"], input=samples
    )
    assert piped.exit_code == 0, piped.output
    assert "monitoring stdin" in piped.output and "replayed 120.0 s" in piped.output
    missing = runner.invoke(app, ["monitor", str(beat_bundle), "--record", "-"], input="1\n")
    assert missing.exit_code == 2 and "needs --fs" in missing.output


def test_monitor_command_runs_without_loading_torch(beat_bundle):
    import subprocess
    import sys

    record = dataset_dir("mitdb_full") / "232"
    code = (
        "import sys\n"
        "from medseq.cli import app\n"
        f"app(['monitor', {str(beat_bundle)!r}, '--record', {str(record)!r}], "
        "standalone_mode=False)\n"
        "print('torch loaded:', 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "torch loaded: False" in result.stdout and "ALERT" in result.stdout


def test_an_open_af_episode_is_cut_by_an_electrode_off_and_the_reason_given(beat_bundle):
    # record 202, 20:00-26:00: atrial fibrillation from 21:42 (reference annotations)
    rec = read_record(dataset_dir("mitdb_full") / "202", lead="MLII")
    x = rec.samples[20 * 60 * 360 : 26 * 60 * 360].copy()
    lo, hi = 240 * 360, 255 * 360  # 24:00-24:15
    x[lo:hi] += 6.0
    detector = StreamDetector(BeatClassifier.from_bundle(beat_bundle), 360.0)
    alerts = [a for i in range(0, len(x), 360) for a in detector.push(x[i : i + 360]).alerts]
    af = [a for a in alerts if a.episode == "AF"]
    onsets = [a for a in af if a.kind == "onset" and a.reported_s < 240.0]
    assert onsets and 90.0 <= onsets[0].start_s <= 200.0
    cut = [a for a in af if a.kind == "suppressed"]
    assert len(cut) == 1 and cut[0].reason == "lead_off" and 239.0 <= cut[0].reported_s <= 256.0
    assert not [a for a in alerts if a.kind == "onset" and 240.0 <= a.reported_s < 255.0]


@pytest.fixture(scope="module")
def exported_bundle(beat_bundle, tmp_path_factory) -> Path:
    """The beat bundle with its ONNX export (``medseq export --format onnx``), in a copy."""
    from medseq.serving.onnx import export_onnx

    copy = tmp_path_factory.mktemp("onnx") / "bundle"
    shutil.copytree(beat_bundle, copy)
    export_onnx(copy)
    return copy


@pytest.mark.parametrize("name", ["208", "232"])
def test_onnx_runtime_equals_the_numpy_gru_on_real_records(exported_bundle, name):
    from medseq.monitoring.onnx_model import OnnxBeatClassifier

    x = _record(name, 8)
    numpy_beats, numpy_alerts = _stream(exported_bundle, x, [360] * (len(x) // 360 + 1))
    detector = StreamDetector(OnnxBeatClassifier(exported_bundle), 360.0)
    outs = [detector.push(x[i : i + 360]) for i in range(0, len(x), 360)]
    beats = [b for o in outs for b in o.beats]
    assert len(beats) > 400
    assert [b.sample for b in beats] == [b.sample for b in numpy_beats]
    assert [b.label for b in beats] == [b.label for b in numpy_beats]
    np.testing.assert_allclose(
        [b.probabilities for b in beats], [b.probabilities for b in numpy_beats], atol=1e-5
    )
    assert [a for o in outs for a in o.alerts] == numpy_alerts


def test_onnx_export_of_another_bundle_version_is_refused(exported_bundle, tmp_path):
    from medseq.monitoring.onnx_model import OnnxBeatClassifier

    with pytest.raises(FileNotFoundError, match="medseq export"):
        OnnxBeatClassifier(exported_bundle, onnx_path=tmp_path / "none.onnx")
    other = tmp_path / "other"
    shutil.copytree(exported_bundle, other)
    data = json.loads((other / "medseq.json").read_text())
    data["threshold"] = 0.25  # a re-saved bundle: new content hash, stale model.onnx
    body = {k: v for k, v in data.items() if k != "content_sha256"}
    import hashlib

    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()
    weights = (other / "weights.safetensors").read_bytes()
    data["content_sha256"] = hashlib.sha256(weights + canonical).hexdigest()
    (other / "medseq.json").write_text(json.dumps(data))
    with pytest.raises(UnsupportedBundle, match="exported from another version"):
        OnnxBeatClassifier(other)


def test_monitor_command_with_the_onnx_runtime_and_no_torch(exported_bundle, tmp_path):
    import os
    import subprocess
    import sys

    blocker = tmp_path / "notorch"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, _NoTorch())\n"
    )
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(src)])}
    record = dataset_dir("mitdb_full") / "200"
    code = (
        "import sys\n"
        "from medseq.cli import app\n"
        f"app(['monitor', {str(exported_bundle)!r}, '--record', {str(record)!r}, "
        "'--runtime', 'onnx'], standalone_mode=False)\n"
        "print('loaded:', sorted({'torch', 'scipy', 'fastapi'} & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "ALERT onset V run" in result.stdout and "replayed 1805.6 s" in result.stdout
    assert "loaded: []" in result.stdout


def _format_3_model():
    """A hand-set format-3 AF model (AF when irregular and without P waves; not fitted)."""
    from medseq.monitoring.af_model import FEATURES_BY_FORMAT, AFModel

    names = FEATURES_BY_FORMAT["medseq.af_rr/3"]
    coef = np.zeros(len(names))
    coef[names.index("share_0.1")], coef[names.index("p_corr_median")] = 3.0, -3.0
    return AFModel({"format": "medseq.af_rr/3", "features": list(names), "n_intervals": 24,
                    "mean": [0.0] * len(names), "scale": [1.0] * len(names),
                    "coef": coef.tolist(), "intercept": 0.5, "threshold_on": 0.6,
                    "threshold_off": 0.3,
                    "alert_rule": {"min_on_s": 15, "min_off_s": 10}})  # fmt: skip


def test_a_format_3_af_model_streams_as_offline_and_alerts_on_af(beat_bundle):
    """201 opens with about 6 minutes of AF: the P-wave-aware model alerts there, with the
    15 s its file asks for, and chunks of random size give the offline pass's alerts."""
    x = _record("201", 6)

    def run(sizes) -> list:
        detector = StreamDetector(BeatClassifier.from_bundle(beat_bundle), 360.0,
                                  af_model=_format_3_model())  # fmt: skip
        assert detector.af.rule.min_on_s == 15.0 and detector.atrial is not None
        alerts, i = [], 0
        for n in sizes:
            alerts += detector.push(x[i : i + n]).alerts
            i += n
        return [a for a in alerts if a.episode == "AF"]

    offline = run([len(x)])
    sizes = np.random.default_rng(3).integers(1, 1500, size=len(x) // 700)
    assert run([*sizes.tolist(), len(x)]) == offline
    onsets = [a for a in offline if a.kind == "onset"]
    assert onsets and onsets[0].reported_s - onsets[0].start_s >= 15.0
