import json

import pytest

from medseq.training import TrainConfig


def test_defaults_are_valid_and_resolve_the_loss():
    cfg = TrainConfig()
    assert cfg.loss_name == "bce"
    assert TrainConfig(task="regression", monitor="mse").loss_name == "mse"
    assert TrainConfig(task="multiclass").loss_name == "cross_entropy"


def test_json_round_trip_is_exact():
    cfg = TrainConfig(
        task="multilabel",
        lr=3e-4,
        pos_weight="balanced",
        clip_grad_norm=1.0,
        scheduler="plateau",
        monitor="auprc",
        checkpoint_dir="runs/x",
        patience=None,
    )
    again = TrainConfig.from_json(cfg.to_json())
    assert again == cfg
    assert json.loads(cfg.to_json()) == cfg.to_dict()


def test_ints_become_floats_so_the_round_trip_is_stable():
    cfg = TrainConfig(lr=1, clip_grad_value=5, pos_weight=3)
    assert isinstance(cfg.lr, float) and isinstance(cfg.clip_grad_value, float)
    assert TrainConfig.from_json(cfg.to_json()) == cfg


def test_unknown_keys_are_errors():
    with pytest.raises(ValueError, match=r"unknown keys \['learning_rate'\]"):
        TrainConfig.from_dict({"learning_rate": 0.1})


def test_frozen():
    with pytest.raises(AttributeError):
        TrainConfig().lr = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "ranking"}, r"TrainConfig.task must be one of .*got 'ranking'"),
        ({"epochs": 0}, r"TrainConfig.epochs must be >= 1, got 0"),
        ({"epochs": 2.5}, r"TrainConfig.epochs must be an int >= 1, got 2.5"),
        ({"batch_size": True}, r"batch_size must be an int >= 1, got True"),
        ({"lr": 0.0}, r"TrainConfig.lr must be in \(0.0, inf\], got 0.0"),
        ({"lr": float("nan")}, r"TrainConfig.lr must be in"),
        ({"lr": "fast"}, r"TrainConfig.lr must be a number"),
        ({"momentum": 1.5}, r"momentum must be in \[0.0, 1.0\], got 1.5"),
        ({"lr_gamma": 0}, r"lr_gamma must be in \(0.0, 1.0\], got 0.0"),
        ({"weight_decay": -1e-4}, r"weight_decay must be in \[0.0, inf\], got -0.0001"),
        ({"l1": -1}, r"TrainConfig.l1 must be in \[0.0, inf\]"),
        ({"clip_grad_norm": 0}, r"clip_grad_norm must be in \(0.0, inf\], got 0.0"),
        ({"focal_alpha": 2.0, "loss": "focal"}, r"focal_alpha must be in \[0.0, 1.0\]"),
        ({"patience": 0}, r"TrainConfig.patience must be >= 1, got 0"),
        ({"seed": -1}, r"TrainConfig.seed must be an int >= 0, got -1"),
        ({"num_threads": 0}, r"num_threads must be >= 1, got 0"),
        ({"optimizer": "lbfgs"}, r"optimizer must be one of"),
        ({"scheduler": "onecycle"}, r"scheduler must be one of"),
        ({"device": "tpu"}, r"device must be one of"),
        ({"pos_weight": "auto"}, r"pos_weight must be \"balanced\""),
        ({"pos_weight": -2.0}, r"pos_weight must be in \(0.0, inf\]"),
        ({"class_weight": "inverse"}, r"class_weight must be one of \(.balanced., .sqrt_bal"),
        ({"progress": "yes"}, r"progress must be a bool"),
        ({"checkpoint_dir": 3}, r"checkpoint_dir must be a str path or None"),
    ],
)
def test_each_field_is_validated_with_name_bound_and_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"task": "regression", "monitor": "auroc"},
            r"monitor must be one of \('loss', 'mse', 'mae'\)",
        ),
        ({"task": "binary", "monitor": "mae"}, r"monitor must be one of .* for task='binary'"),
        ({"task": "regression", "monitor": "mse", "loss": "bce"}, r"loss must be one of"),
        ({"loss": "focal", "pos_weight": 2.0}, r"focal loss weights classes with focal_alpha"),
        ({"class_weight": "balanced"}, r"class_weight must be None with loss='bce'"),
        (
            {"task": "multiclass", "monitor": "auroc"},
            r"monitor must be one of \('loss', 'accuracy', 'macro_f1', 'balanced_accuracy'\)",
        ),
    ],
)
def test_combinations_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_monitor_mode_is_inferred():
    assert TrainConfig(monitor="auroc").monitor_mode == "max"
    assert TrainConfig(monitor="auprc").monitor_mode == "max"
    assert TrainConfig(monitor="loss").monitor_mode == "min"
    assert TrainConfig(task="regression", monitor="mae").monitor_mode == "min"


def test_changes_from_ignores_where_and_how_fast():
    cfg = TrainConfig(checkpoint_dir="a", num_threads=1)
    moved = TrainConfig(checkpoint_dir="b", num_threads=2, device="cpu", progress=False)
    assert moved.changes_from(cfg.to_json()) == ""
    assert TrainConfig(lr=0.1).changes_from(cfg.to_json()) == "lr: 0.001 -> 0.1"
