"""Smoke runs on real ECGs: the read -> features -> ConvRNN -> Trainer path works end to end.

Tiny by design (a few hundred beats, a few dozen recordings, a few epochs): these tests show
that the pieces fit, not how well the model does; no quality target is checked here.
"""

import numpy as np
import pytest
import torch

from medseq.features.signals import beat_sequence, beats
from medseq.features.signals import signal as sig
from medseq.models.conv_rnn import ConvRNN, SignalModelConfig
from medseq.sources import physionet2017, wfdb_records
from medseq.tasks import ecg
from medseq.training import TrainConfig, Trainer


@pytest.fixture(scope="module")
def mitdb_dir():
    from medseq.paths import dataset_dir

    return dataset_dir("mitdb_full")


def _beats(folder, record: str, per_class: int, rng: np.random.Generator):
    s = wfdb_records.read_record(folder, record, channels=[0])
    x = sig.normalize_per_record(sig.bandpass_filter(s.samples, s.fs_hz))
    positions, classes = ecg.beat_labels(s)
    segments, kept = beats.beat_segments(x, positions, s.fs_hz)
    classes = classes[kept]
    chosen = np.concatenate(
        [rng.permutation(np.flatnonzero(classes == c))[:per_class] for c in np.unique(classes)]
    )
    return segments[chosen], classes[chosen]


def _dataset(folder, records, per_class: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    parts = [_beats(folder, r, per_class, rng) for r in records]
    values = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts]).astype(np.float32)
    return {"values": values, "lengths": np.full(len(y), values.shape[1]), "y": y}


def test_mitbih_beat_classifier_trains_on_ds1_and_predicts_ds2(mitdb_dir):
    ds1, ds2 = ecg.mitbih_split()
    train_records = [r for r in ("106", "119", "208", "209") if r in ds1]
    test_records = [r for r in ("221", "233") if r in ds2]
    train = _dataset(mitdb_dir, train_records, per_class=60, seed=0)
    test = _dataset(mitdb_dir, test_records, per_class=40, seed=1)
    assert len(train["y"]) >= 300 and set(np.unique(train["y"])) >= {0.0, 2.0}
    config = SignalModelConfig(
        n_outputs=5, conv_channels=(8, 16), conv_strides=(3, 3), kernel_size=7, hidden_size=16
    )
    model = ConvRNN(config)
    train_config = TrainConfig(
        task="multiclass", epochs=4, batch_size=32, lr=3e-3, patience=None, progress=False
    )
    trainer = Trainer(train_config)
    result = trainer.fit(model, train, test)
    losses = [r["train_loss"] for r in result.history]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    probs = trainer.predict(model, test)
    assert probs.shape == (len(test["y"]), 5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_cinc2017_crops_train_with_tbptt_and_chunked_inference_matches():
    from medseq.paths import dataset_dir

    data = physionet2017.read(dataset_dir("physionet2017"), max_records=48)
    rng = np.random.default_rng(0)
    crop = 2700  # 9 s, the shortest recording
    values = np.stack(
        [sig.random_crop(sig.normalize_per_record(s.samples), crop, rng) for s in data.signals]
    )
    y = ecg.cinc2017_labels(data.labels).to_numpy().astype(np.float32)
    split = {"values": values, "lengths": np.full(len(y), crop), "y": y}
    config = SignalModelConfig(conv_channels=(8, 16), conv_strides=(5, 4), hidden_size=16)
    model = ConvRNN(config)
    trainer = Trainer(
        TrainConfig(
            task="multiclass",
            epochs=2,
            batch_size=16,
            tbptt_steps=30,
            patience=None,
            progress=False,
        )
    )
    result = trainer.fit(model, split, split)
    assert np.isfinite([r["train_loss"] for r in result.history]).all()
    model.eval()
    longest = max(data.signals, key=lambda s: s.n_samples)
    x = torch.as_tensor(sig.normalize_per_record(longest.samples))[None]
    with torch.no_grad():
        full = model(x, torch.tensor([x.shape[1]]))
        chunked = model.chunked_forward(x, chunk_samples=20 * config.total_stride)
    assert (full - chunked).abs().max().item() <= 1e-5


def test_sequence_labelling_reads_a_whole_mitbih_record(mitdb_dir):
    s = wfdb_records.read_record(mitdb_dir, "100")
    x = sig.normalize_per_record(sig.bandpass_filter(s.samples, s.fs_hz))
    positions, classes = ecg.beat_labels(s)
    # Per beat: one step per beat, the whole 30-minute record in one sequence.
    features, kept = beat_sequence.beat_feature_sequence(x, positions, s.fs_hz)
    assert len(kept) >= len(positions) - 2
    per_beat = ConvRNN(
        SignalModelConfig(
            in_channels=features.shape[1],
            n_outputs=5,
            conv_channels=(),
            conv_strides=(),
            hidden_size=16,
            mode="sequence",
        )
    ).eval()
    with torch.no_grad():
        logits = per_beat(torch.as_tensor(features)[None], torch.tensor([len(kept)]))
    assert logits.shape == (1, len(kept), 5)
    # Per window: raw samples, one step per 32 samples, labels on the steps holding a beat.
    config = SignalModelConfig(
        in_channels=2, n_outputs=5, conv_channels=(8, 16), conv_strides=(8, 4), hidden_size=16
    )
    per_window = ConvRNN(SignalModelConfig(**{**config.to_dict(), "mode": "sequence"})).eval()
    labels = beat_sequence.step_labels(positions, classes, s.n_samples, config.total_stride)
    assert int(np.isfinite(labels).sum()) == len(positions)
    signal = torch.as_tensor(x)[None]
    with torch.no_grad():
        chunked = per_window.chunked_forward(signal, chunk_samples=360 * 64)
        full = per_window(signal, torch.tensor([s.n_samples]))
    assert chunked.shape == (1, len(labels), 5)
    assert (chunked - full).abs().max().item() <= 1e-5


def _beat_sequences(folder, records, n_beats: int) -> dict[str, np.ndarray]:
    values, labels = [], []
    for record in records:
        s = wfdb_records.read_record(folder, record, channels=[0])
        x = sig.normalize_per_record(sig.bandpass_filter(s.samples, s.fs_hz))
        positions, classes = ecg.beat_labels(s)
        features, kept = beat_sequence.beat_feature_sequence(x, positions, s.fs_hz)
        for start in range(0, len(kept) - n_beats + 1, n_beats)[:2]:
            values.append(features[start : start + n_beats])
            labels.append(classes[kept][start : start + n_beats])
    values = np.stack(values)
    return {
        "values": values,
        "lengths": np.full(len(values), n_beats),
        "y": np.stack(labels).astype(np.float32),
    }


def test_per_beat_sequence_labelling_trains_with_tbptt_on_ds1(mitdb_dir):
    train = _beat_sequences(mitdb_dir, ["106", "119", "208"], n_beats=150)
    test = _beat_sequences(mitdb_dir, ["221", "233"], n_beats=150)
    config = SignalModelConfig(
        in_channels=train["values"].shape[2],
        n_outputs=5,
        conv_channels=(),
        conv_strides=(),
        hidden_size=16,
        mode="sequence",
    )
    model = ConvRNN(config)
    train_config = TrainConfig(
        task="multiclass", epochs=4, batch_size=2, lr=3e-3, patience=None,
        tbptt_steps=50, progress=False,
    )  # fmt: skip
    trainer = Trainer(train_config)
    result = trainer.fit(model, train, test)
    losses = [r["train_loss"] for r in result.history]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    probs = trainer.predict(model, test)
    assert probs.shape == (*test["y"].shape, 5)
