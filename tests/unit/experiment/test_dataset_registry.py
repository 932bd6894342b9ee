"""The registries that let every modality share one runner, bundle and trainer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score
from torch import nn

from medseq._imports import load_object
from medseq.bundle import Bundle, load_bundle, save_bundle
from medseq.datasets.registry import DATASETS, SplitIds, get_dataset
from medseq.evaluation.multi import (
    bootstrap_table,
    confusion,
    multiclass_metrics,
    multilabel_metrics,
)
from medseq.experiment.config import parse_config
from medseq.features.registry import featurizer_from_state_dict
from medseq.models import ModelConfig, build_model, model_config_from_dict
from medseq.tasks.spec import CONFIG_TASKS
from medseq.training import TrainConfig, Trainer


def test_every_registered_dataset_loads_as_a_spec():
    for name in DATASETS:
        spec = get_dataset(name)
        # event datasets take their tasks from [task] tables: none until a config is parsed
        assert spec.name == name and (spec.tasks or spec.tasks is CONFIG_TASKS)


def test_unknown_names_list_what_is_registered():
    with pytest.raises(ValueError, match=r"unknown dataset 'nope'; registered datasets: \["):
        get_dataset("nope")
    with pytest.raises(ValueError, match="unknown model kind 'nope'; known kinds"):
        model_config_from_dict({"kind": "nope"})
    with pytest.raises(ValueError, match="unknown featurizer kind 'nope'"):
        featurizer_from_state_dict({"kind": "nope"})
    with pytest.raises(ValueError, match=r"expected 'package\.module:attribute'"):
        load_object("medseq.bundle")


def test_model_config_dispatch_defaults_to_the_rnn_classifier():
    config = model_config_from_dict({"input_size": 3, "hidden_size": 4})
    assert config == ModelConfig(input_size=3, hidden_size=4)
    grud = model_config_from_dict({"kind": "grud", "input_size": 3})
    assert type(build_model(grud)).__name__ == "GRUD"


def test_config_checks_task_and_protocol_against_the_dataset():
    with pytest.raises(
        ValueError, match=r"task must be one of \[.length_of_stay., .length_of_stay_class.,"
    ):
        parse_config({"model": {}, "data": {"task": "sepsis"}})
    with pytest.raises(ValueError, match="has no split protocol 'scaffold'"):
        parse_config({"model": {}, "data": {"protocol": "scaffold"}})
    cfg = parse_config({"model": {}})
    assert cfg.data.test == "physionet2012/set-b.tar.gz" and cfg.data.protocol == ""


def test_split_ids_refuse_leaks():
    with pytest.raises(ValueError, match="1 subjects in both train and val"):
        SplitIds(folds=[(np.array([1, 2]), np.array([2, 3]))])
    with pytest.raises(ValueError, match="1 subjects in both val and test"):
        SplitIds(folds=[(np.array([1, 2]), np.array([3]))], test=np.array([3, 4]))
    fold = [(np.array([1, 2]), np.array([3]))]
    with pytest.raises(ValueError, match="1 subjects in both train and early_stop"):
        SplitIds(folds=fold, early_stop=[np.array([2, 5])])
    with pytest.raises(ValueError, match="1 subjects in both val and early_stop"):
        SplitIds(folds=fold, early_stop=[np.array([3])])
    with pytest.raises(ValueError, match="1 early-stopping parts for 2 folds"):
        SplitIds(folds=fold * 2, early_stop=[np.array([5])])


def test_multiclass_metrics_agree_with_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300).astype(np.float32)
    prob = rng.dirichlet(np.ones(3), 300)
    prob[np.arange(150), y[:150].astype(int)] += 1.0  # half the samples learnable
    prob /= prob.sum(axis=1, keepdims=True)
    got = multiclass_metrics(y, prob, ["N", "A", "O"])
    pred = prob.argmax(axis=1)
    assert got["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    for k, name in enumerate("NAO"):
        assert got[f"recall_{name}"] == pytest.approx(recall_score(y == k, pred == k))
        assert got[f"precision_{name}"] == pytest.approx(precision_score(y == k, pred == k))
    assert confusion(y, prob, 3).sum() == 300


def test_per_step_labels_are_flattened_to_labelled_steps():
    y = np.array([[0, 1, np.nan], [2, np.nan, np.nan]], dtype=np.float32)
    prob = np.zeros((2, 3, 3))
    prob[0, 0, 0] = prob[0, 1, 2] = prob[1, 0, 2] = prob[:, 2, 1] = 1.0
    matrix = confusion(y, prob, 3)
    assert matrix.sum() == 3 and matrix[0, 0] == 1 and matrix[1, 2] == 1 and matrix[2, 2] == 1


def test_multilabel_metrics_skip_missing_labels():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, (200, 2)).astype(np.float32)
    prob = np.clip(y * 0.3 + rng.random((200, 2)) * 0.7, 0, 1)
    y[:50, 1] = np.nan
    got = multilabel_metrics(y, prob, ["a", "b"])
    expected_b = roc_auc_score(y[50:, 1], prob[50:, 1])
    assert got["auroc_b"] == pytest.approx(expected_b)
    assert got["mean_auroc"] == pytest.approx((got["auroc_a"] + expected_b) / 2)
    table = bootstrap_table(lambda t, p: multilabel_metrics(t, p, ["a", "b"]), y, prob, n_boot=50)
    assert table["mean_auroc"].lo <= got["mean_auroc"] <= table["mean_auroc"].hi


class _TokenModel(nn.Module):
    """A bag-of-tokens classifier: checks that integer inputs reach forward as int64."""

    def __init__(self, n_outputs: int = 3) -> None:
        super().__init__()
        self.embed = nn.EmbeddingBag(10, 4)
        self.head = nn.Linear(4, n_outputs)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        assert tokens.dtype == torch.int64
        return self.head(self.embed(tokens))


def test_trainer_passes_named_integer_arrays_and_augments_training_batches():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 10, (64, 5)).astype(np.int32)
    y = (tokens[:, 0] % 3).astype(np.float32)
    seen = []

    def augment(batch, generator):
        seen.append(int(batch["tokens"].shape[0]))
        return {**batch, "tokens": batch["tokens"].flip(1)}

    config = TrainConfig(task="multiclass", epochs=2, batch_size=16, progress=False)
    fit = Trainer(config).fit(
        _TokenModel(), {"tokens": tokens, "y": y}, {"tokens": tokens, "y": y}, augment=augment
    )
    assert len(fit.history) == 2 and sum(seen) == 2 * 64


def test_multiclass_bundle_round_trip_keeps_class_names(tmp_path, set_a):
    from medseq.features import ICUFeaturizer

    ids = set_a.static.index.to_numpy()[:40]
    featurizer = ICUFeaturizer().fit(set_a.events, set_a.static, ids)
    config = ModelConfig(
        input_size=featurizer.n_features,
        static_size=featurizer.n_static,
        hidden_size=4,
        n_outputs=3,
    )
    torch.manual_seed(0)
    bundle = Bundle(
        config,
        featurizer,
        [build_model(config)],
        task="multiclass",
        class_names=["low", "mid", "high"],
        provenance={"dataset": "physionet2012", "task": "length_of_stay_class"},
    )
    save_bundle(bundle, tmp_path)
    loaded = load_bundle(tmp_path)
    features = featurizer.transform(set_a.events, set_a.static, ids)
    prob = loaded.predict_arrays(features)
    assert loaded.class_names == ["low", "mid", "high"] and prob.shape == (40, 3)
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(prob, bundle.predict_arrays(features))


def test_labels_frame_becomes_multilabel_y():
    from medseq.experiment.data import LabelledSet, stratification_target

    labels = pd.DataFrame({"a": [1.0, np.nan, 0.0], "b": [0.0, 1.0, 1.0]}, index=[5, 6, 7])
    split = LabelledSet.select(None, labels, [7, 5])
    np.testing.assert_array_equal(split.y, np.array([[0, 1], [1, 0]], dtype=np.float32))
    assert (stratification_target(labels) == 0).all()


def test_training_source_is_recognised_by_bytes_or_by_place(tmp_path):
    from types import SimpleNamespace

    from medseq.experiment.data import file_sha256
    from medseq.experiment.evaluation_set import is_training_source

    folder = tmp_path / "tox21"
    folder.mkdir()
    (folder / "data.csv").write_text("a,b\n1,2\n")
    (tmp_path / "copy.csv").write_text("a,b\n1,2\n")
    (tmp_path / "other.csv").write_text("a,b\n3,4\n")

    def bundle(train):
        files = {"train": {"path": str(train), "sha256": file_sha256(train)}}
        return SimpleNamespace(provenance={"files": files})

    by_folder, by_file = bundle(folder), bundle(folder / "data.csv")
    inside = folder / "data.csv"
    assert is_training_source(by_folder, inside, file_sha256(inside))  # file in the folder
    assert is_training_source(by_file, tmp_path / "copy.csv", file_sha256(tmp_path / "copy.csv"))
    other = tmp_path / "other.csv"
    assert not is_training_source(by_folder, other, file_sha256(other))
    assert not is_training_source(by_file, other, file_sha256(other))
