"""``medseq monitor`` of a MIT-BIH + SVDB bundle on a real 360 Hz MIT-BIH record.

The bundle's model reads 128 Hz recordings (MIT-BIH is brought to SVDB's rate in
training). The rate and primary lead are stored in the bundle at training time
(``provenance["signal"]``), so the torch-free monitor resamples the record on the way in
and reads its MLII lead, without the dataset registry. A bundle saved before the field
existed still runs, at the record's own rate, as before.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from data_slices import write_mitbih_crop
from medseq.cli import app
from medseq.datasets.mitbih import BEAT_CLASSES
from medseq.datasets.registry import get_dataset
from medseq.paths import dataset_dir
from medseq.sources import wfdb_records

FEATURES = {"lead": "ECG1", "morphology": "none", "local_ratios": False, "context_beats": 2}
MODEL = {"kind": "conv_rnn", "conv_channels": [], "conv_strides": [], "hidden_size": 8,
         "cell": "gru", "pooling": "last"}  # fmt: skip
N_TRAIN_BEATS = 800


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """``svdb/`` with record 800 and ``mitdb_full/`` with 3 minutes of record 114, whose
    first channel is V5 (MLII is its second: the lead must be found by name)."""
    base = tmp_path_factory.mktemp("svdb_root")
    svdb, mitdb = base / "svdb", base / "mitdb_full"
    svdb.mkdir()
    mitdb.mkdir()
    for suffix in (".hea", ".atr", ".dat.xz"):
        (svdb / f"800{suffix}").symlink_to(dataset_dir("svdb") / f"800{suffix}")
    (svdb / "RECORDS").write_text("800\n")
    write_mitbih_crop(mitdb, "114", 3.0)
    (mitdb / "RECORDS").write_text("114\n")
    return svdb


@pytest.fixture(scope="module")
def bundles(root, tmp_path_factory) -> tuple[Path, Path]:
    """(a bundle with ``provenance["signal"]``, the same bundle without it: an old one).

    One epoch on the first beats of the two records through the spec's own hooks; the
    signal field is written by the same call the runner and federated paths make.
    """
    from medseq.bundle import Bundle, save_bundle
    from medseq.models import build_model, model_config_from_dict
    from medseq.training import TrainConfig, Trainer

    spec = get_dataset("mitbih_svdb")
    data = spec.read(root)
    labels = spec.labels("beat", data)
    ids = labels.index.to_numpy()[:N_TRAIN_BEATS]
    featurizer = spec.fit_featurizer(dict(FEATURES), data, ids)
    arrays = spec.transform(featurizer, data, ids)
    arrays["y"] = labels.loc[ids].to_numpy(np.float32)
    config = model_config_from_dict({**MODEL, "n_outputs": 4, **spec.model_sizes(featurizer)})
    model = build_model(config)
    train = TrainConfig(task="multiclass", epochs=1, batch_size=64, patience=None, progress=False)
    Trainer(train).fit(model, arrays, arrays)
    signal = spec.signal_streaming.input_signal(featurizer.state_dict())
    out = tmp_path_factory.mktemp("bundles")
    for name, extra in (("new", {"signal": signal}), ("old", {})):
        bundle = Bundle(
            config, featurizer, [model], task="multiclass", threshold=None,
            provenance={"dataset": "mitbih_svdb", "task": "beat", **extra},
            class_names=list(BEAT_CLASSES),
        )  # fmt: skip
        save_bundle(bundle, out / name)
    return out / "new", out / "old"


def _monitor(bundle: Path, record: Path, *extra: str) -> list[str]:
    result = CliRunner().invoke(app, ["monitor", str(bundle), "--record", str(record), *extra])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def _beats(lines: list[str]) -> list[str]:
    return [m.group(1) for line in lines if (m := re.search(r"\] beat (\w+) p=", line))]


def test_the_bundle_stores_its_input_rate_and_lead(bundles):
    manifest = json.loads((bundles[0] / "medseq.json").read_text())
    assert manifest["provenance"]["signal"] == {
        "fs_hz": 128.0, "lead": "ECG1", "lead_names": ["MLII"]
    }  # fmt: skip


def test_a_360_hz_record_is_resampled_to_the_model_rate(root, bundles):
    from medseq.datasets.mitbih_svdb import harmonise_named
    from medseq.monitoring.beat_model import BeatClassifier
    from medseq.monitoring.detector import StreamDetector

    record = root.parent / "mitdb_full" / "114"
    lines = _monitor(bundles[0], record, "--beats")
    assert lines[0].startswith("monitoring record 114 lead MLII at 360 Hz")
    assert "resampled to the model's 128 Hz" in lines[0]
    streamed = _beats(lines)
    # the same beats as the 128 Hz MLII the model was trained on, fed at once
    raw = wfdb_records.read_record(record.parent, "114")
    at_128 = harmonise_named(raw).samples[:, 0]
    batch = StreamDetector(BeatClassifier.from_bundle(bundles[0]), 128.0).push(at_128).beats
    assert len(streamed) > 150
    assert len(batch) - 2 <= len(streamed) <= len(batch)
    assert streamed == [b.label for b in batch[: len(streamed)]]
    # the beat times are on the record's clock: 3 minutes of record replayed
    assert "replayed 180.0 s" in lines[-1]


def test_an_old_bundle_still_runs_at_the_record_rate(root, bundles):
    lines = _monitor(bundles[1], root.parent / "mitdb_full" / "114", "--beats")
    assert lines[0].startswith("monitoring record 114 lead V5 at 360 Hz")  # first channel
    assert "resampled" not in lines[0] and "records no input rate" in lines[0]
    assert _beats(lines) and "replayed 180.0 s" in lines[-1]


def test_a_bundle_with_a_bad_rate_is_refused_naming_the_field(root, bundles, tmp_path):
    from medseq.bundle import load_bundle, save_bundle

    bundle = load_bundle(bundles[0])
    bundle.provenance["signal"]["fs_hz"] = 0
    save_bundle(bundle, tmp_path / "bad")  # hashed as saved: refused for the rate alone
    result = CliRunner().invoke(
        app, ["monitor", str(tmp_path / "bad"), "--record", str(root.parent / "mitdb_full" / "114")]
    )
    assert result.exit_code != 0
    assert "provenance['signal']['fs_hz'] must be a rate > 0" in result.output


@pytest.mark.slow  # trains the shared MIT-BIH beat bundle through the runner (~1 min)
def test_the_runner_stores_the_rate_and_lead_a_bundle_was_trained_at(trained_beat_bundle):
    """``medseq train`` writes the field: a MIT-BIH bundle reads 360 Hz MLII, so a MIT-BIH
    record runs at its own rate, with no resampling."""
    manifest = json.loads((trained_beat_bundle / "medseq.json").read_text())
    assert manifest["provenance"]["signal"] == {"fs_hz": 360.0, "lead": "MLII", "lead_names": []}
    lines = _monitor(trained_beat_bundle, dataset_dir("mitdb_full") / "100", "--speed", "0")
    assert lines[0].startswith("monitoring record 100 lead MLII at 360 Hz with")
