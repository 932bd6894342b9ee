"""ECG dataset specs on real records: CinC 2017 (20 recordings) and MIT-BIH (3 records).

Checks what the runner relies on: labels indexed by int ids, featurizers fitted on training
ids, model inputs of the right shapes, the de Chazal protocol without leakage, the extra
metrics, and a bundle of a tiny trained ConvRNN that reloads and predicts identically.
"""

import numpy as np
import pytest

from medseq.datasets import cinc2017, mitbih
from medseq.datasets.registry import get_dataset
from medseq.models import build_model, model_config_from_dict
from medseq.paths import dataset_dir
from medseq.schema import DataError
from medseq.tasks.ecg import MITBIH_DS1, MITBIH_DS2
from medseq.training import TrainConfig, Trainer


@pytest.fixture(scope="module")
def cinc():
    return cinc2017.read(dataset_dir("physionet2017"), max_records=20)


@pytest.fixture(scope="module")
def mit():
    # 101 (DS1, training), 116 (DS1, validation), 100 (DS2, test)
    return mitbih.read_records(dataset_dir("mitdb_full"), ("101", "116", "100"))


def test_cinc2017_spec_labels_and_both_featurizers(cinc):
    spec = get_dataset("cinc2017")
    assert spec.task_type("rhythm") == "multiclass"
    labels = spec.labels("rhythm", cinc)
    assert len(labels) == 20 and labels.index.dtype == np.int64 and labels.index[0] == 1
    assert set(labels.unique()) <= {0, 1, 2, 3}
    ids = labels.index.to_numpy()
    signal = spec.fit_featurizer({"kind": "signal", "max_seconds": 61.0}, cinc, ids[:15])
    arrays = spec.transform(signal, cinc, ids)
    assert arrays["values"].shape == (20, 61 * 150, 1)
    lengths = [cinc.signals[i].n_samples // 2 for i in ids]  # 300 Hz -> 150 Hz
    assert arrays["lengths"].tolist() == lengths
    assert spec.model_sizes(signal) == {"in_channels": 1}
    beats = spec.fit_featurizer({"kind": "beats", "crop_beats": 12}, cinc, ids[:15])
    seq = spec.transform(beats, cinc, ids)
    assert seq["values"].shape[2] == beats.n_features == spec.model_sizes(beats)["in_channels"]
    # roughly one beat per second of a 30-60 s recording
    assert 20 <= np.median(seq["lengths"]) <= 80
    crop = spec.augment({"kind": "beats", "crop_beats": 12}, beats)
    assert crop is not None and crop.length == 12
    with pytest.raises(ValueError, match="unknown keys"):
        spec.fit_featurizer({"kind": "beats", "crop_seconds": 5}, cinc, ids)


def test_cinc2017_challenge_f1_ignores_the_noisy_class():
    y = np.array([0, 1, 2, 3, 3], dtype=np.float32)
    perfect = np.eye(4)[[0, 1, 2, 0, 1]]  # noisy recordings wrong, N/A/O right
    score = cinc2017.metrics("rhythm", y, perfect)["challenge_f1"]
    assert score == pytest.approx(np.mean([2 / 3, 2 / 3, 1.0]))


def test_mitbih_de_chazal_protocol_has_no_record_on_two_sides(mit):
    spec = get_dataset("mitbih")
    labels = spec.labels("beat", mit)
    assert set(labels.unique()) <= {0, 1, 2, 3}  # N, S, V, F; Q excluded
    split = spec.protocol("de_chazal")(None, mit, labels)
    (train, val), test = split.folds[0], split.test
    records = {name: set(ids // mitbih.ID_STRIDE) for name, ids in
               (("train", train), ("val", val), ("test", test))}  # fmt: skip
    assert records == {"train": {101}, "val": {116}, "test": {100}}
    ds1, ds2 = {int(r) for r in MITBIH_DS1}, {int(r) for r in MITBIH_DS2}
    assert records["train"] | records["val"] <= ds1 and records["test"] <= ds2
    assert len(train) + len(val) + len(test) == len(labels)
    with pytest.raises(DataError, match="paced"):
        mitbih.read_records(dataset_dir("mitdb_full"), ("102",))


def test_mitbih_metrics_are_per_class_se_and_ppv():
    y = np.array([0, 0, 0, 1, 1, 2], dtype=np.float32)
    pred = np.eye(4)[[0, 0, 1, 1, 0, 2]]
    out = mitbih.metrics("beat", y, pred)
    assert out["se_N"] == pytest.approx(2 / 3) and out["ppv_N"] == pytest.approx(2 / 3)
    assert out["se_S"] == pytest.approx(1 / 2) and out["ppv_S"] == pytest.approx(1 / 2)
    assert out["se_V"] == 1.0 and np.isnan(out["se_F"]) and out["accuracy"] == pytest.approx(4 / 6)


def test_tiny_trained_beat_model_bundle_reloads_and_predicts_identically(mit, tmp_path):
    from medseq.bundle import Bundle, load_bundle, save_bundle

    spec = get_dataset("mitbih")
    labels = spec.labels("beat", mit)
    split = spec.protocol("de_chazal")(None, mit, labels)
    (train_ids, val_ids), test_ids = split.folds[0], split.test
    features = {"context_beats": 4, "morphology": "deviation", "segment_fs_hz": 25.0}
    featurizer = spec.fit_featurizer(features, mit, train_ids)
    train = spec.transform(featurizer, mit, train_ids)
    val = spec.transform(featurizer, mit, val_ids)
    train["y"] = labels.loc[train_ids].to_numpy(np.float32)
    val["y"] = labels.loc[val_ids].to_numpy(np.float32)
    config = model_config_from_dict(
        {"kind": "conv_rnn", "conv_channels": [], "conv_strides": [], "pooling": "last",
         "hidden_size": 8, "n_outputs": 4, **spec.model_sizes(featurizer)}
    )  # fmt: skip
    model = build_model(config)
    trainer = Trainer(
        TrainConfig(task="multiclass", epochs=2, batch_size=256, patience=None, progress=False)
    )
    fit = trainer.fit(model, train, val)
    assert np.isfinite([r["train_loss"] for r in fit.history]).all()
    bundle = Bundle(
        config,
        featurizer,
        [model],
        task="multiclass",
        class_names=["N", "S", "V", "F"],
        provenance={"dataset": "mitbih", "task": "beat"},
    )
    save_bundle(bundle, tmp_path / "bundle")
    loaded = load_bundle(tmp_path / "bundle")
    assert loaded.model_config == config
    assert loaded.featurizer.state_dict() == featurizer.state_dict()
    before = bundle.predict_arrays(spec.transform(featurizer, mit, test_ids))
    after = loaded.predict_arrays(spec.transform(loaded.featurizer, mit, test_ids))
    assert before.shape == (len(test_ids), 4)
    np.testing.assert_array_equal(after, before)
