import io
import json
import logging

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn.metrics import roc_auc_score
from torch import nn
from training_toys import NoStatic, TinyGRU, make_data

from medseq.training import TrainConfig, Trainer, load_checkpoint
from medseq.training.optim import build_optimizer

FAST = {"num_threads": 1, "progress": False, "batch_size": 32}


def _fit(config: TrainConfig, model: nn.Module | None = None, n: int = 96, **data_kw):
    torch.manual_seed(0)
    model = model if model is not None else TinyGRU()
    train, val = make_data(n, **data_kw), make_data(n // 2, seed=1, **data_kw)
    return model, Trainer(config).fit(model, train, val), val


def _strip_seconds(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def test_learns_and_restores_the_best_epoch():
    cfg = TrainConfig(epochs=12, lr=1e-2, monitor="auroc", patience=None, **FAST)
    model, result, val = _fit(cfg, n=192)
    assert result.best_score > 0.8
    assert result.monitor == "val_auroc" and len(result.history) == 12
    record = result.best_metrics
    assert set(record) == {
        "epoch",
        "train_loss",
        "val_loss",
        "val_auroc",
        "val_auprc",
        "lr",
        "seconds",
    }
    prob = Trainer(cfg).predict(model, val)
    assert prob.shape == (96,) and np.all((prob > 0) & (prob < 1))
    assert roc_auc_score(val["y"], prob) == result.best_score  # the restored weights


def test_restore_best_false_keeps_the_last_epoch(tmp_path):
    cfg = TrainConfig(epochs=6, lr=2e-2, patience=None, checkpoint_dir=str(tmp_path), **FAST)
    torch.manual_seed(0)
    model = TinyGRU()
    train, val = make_data(96), make_data(48, seed=1)
    val["y"] = 1.0 - val["y"]  # the best validation epoch is an early one
    best_run = Trainer(cfg).fit(model, train, val)
    assert best_run.best_epoch < 5
    torch.manual_seed(0)
    model = TinyGRU()
    last_cfg = TrainConfig(
        epochs=6, lr=2e-2, patience=None, restore_best=False, checkpoint_dir=str(tmp_path), **FAST
    )
    Trainer(last_cfg).fit(model, train, val)
    last = load_checkpoint(tmp_path / "last.pt")
    for name, value in model.state_dict().items():
        assert torch.equal(value, last.model[name]), name
    with pytest.raises(ValueError, match="restore_best must be a bool"):
        TrainConfig(restore_best="no")


def test_same_seed_gives_identical_weights_and_history():
    cfg = TrainConfig(epochs=3, lr=1e-2, seed=3, **FAST)
    model_a, result_a, _ = _fit(cfg)
    model_b, result_b, _ = _fit(cfg)
    assert _strip_seconds(result_a.history) == _strip_seconds(result_b.history)
    state_b = model_b.state_dict()
    for name, a in model_a.state_dict().items():
        assert torch.equal(a, state_b[name]), name
    _, result_c, _ = _fit(TrainConfig(epochs=3, lr=1e-2, seed=4, **FAST))
    assert _strip_seconds(result_c.history) != _strip_seconds(result_a.history)


def test_early_stopping_restores_best_weights(tmp_path):
    cfg = TrainConfig(epochs=30, lr=2e-2, patience=2, checkpoint_dir=str(tmp_path), **FAST)
    torch.manual_seed(0)
    model = TinyGRU()
    train = make_data(96)
    val = make_data(48, seed=1)
    val["y"] = 1.0 - val["y"]  # the better the model learns, the worse it validates
    result = Trainer(cfg).fit(model, train, val)
    assert result.stopped_early
    assert len(result.history) == result.best_epoch + 2
    losses = [r["val_loss"] for r in result.history]
    assert result.best_score == min(losses)
    best = load_file(str(tmp_path / "best.safetensors"))
    last = load_checkpoint(tmp_path / "last.pt")
    assert last.epoch == len(result.history) and last.stopped_early
    for name, value in model.state_dict().items():
        assert torch.equal(value, best[name])
    assert not torch.equal(last.model["head.weight"], best["head.weight"])


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("adam", torch.optim.Adam),
        ("adamw", torch.optim.AdamW),
        ("rmsprop", torch.optim.RMSprop),
        ("sgd", torch.optim.SGD),
    ],
)
def test_optimizers(name, cls):
    cfg = TrainConfig(optimizer=name, epochs=2, lr=1e-2, weight_decay=1e-4, **FAST)
    assert isinstance(build_optimizer(cfg, TinyGRU()), cls)
    _, result, _ = _fit(cfg, n=64)
    assert np.isfinite(result.history[-1]["train_loss"])


@pytest.mark.parametrize(
    ("kwargs", "expected_lr"),
    [
        ({"scheduler": "none"}, [0.1, 0.1, 0.1]),
        ({"scheduler": "step", "lr_step_epochs": 1, "lr_gamma": 0.5}, [0.1, 0.05, 0.025]),
        ({"scheduler": "cosine", "epochs": 4}, [0.1, 0.1 * (1 + np.cos(np.pi / 4)) / 2, 0.05]),
    ],
)
def test_schedulers(kwargs, expected_lr):
    cfg = TrainConfig(**{"epochs": 3, "lr": 0.1, "optimizer": "sgd", **kwargs, **FAST})
    _, result, _ = _fit(cfg, n=64)
    lrs = [r["lr"] for r in result.history][:3]
    np.testing.assert_allclose(lrs, expected_lr, rtol=1e-6)


def test_plateau_scheduler_watches_the_monitor():
    cfg = TrainConfig(
        scheduler="plateau",
        lr_plateau_patience=0,
        lr_gamma=0.5,
        epochs=4,
        lr=0.05,
        patience=None,
        **FAST,
    )
    torch.manual_seed(0)
    val = make_data(48, seed=1)
    val["y"] = 1.0 - val["y"]  # validation loss rises every epoch
    result = Trainer(cfg).fit(TinyGRU(), make_data(96), val)
    lrs = [r["lr"] for r in result.history]
    assert lrs[0] == 0.05 and lrs[-1] < lrs[0]


def _one_sgd_step(**clip):
    torch.manual_seed(0)
    model = NoStatic()
    data = make_data(32, task="regression")
    data["y"] = data["y"] * 1000.0  # huge error, huge gradient
    before = model.linear.weight.detach().clone()
    cfg = TrainConfig(
        task="regression",
        optimizer="sgd",
        momentum=0.0,
        lr=1.0,
        epochs=1,
        batch_size=32,
        num_threads=1,
        progress=False,
        **clip,
    )
    Trainer(cfg).fit(model, data, make_data(8, task="regression"))
    return (model.linear.weight.detach() - before).abs()


def test_gradient_clipping_by_value_and_norm():
    assert _one_sgd_step().max() > 1.0
    assert _one_sgd_step(clip_grad_value=1e-3).max() <= 1e-3 + 1e-9
    assert _one_sgd_step(clip_grad_norm=1e-2).norm() <= 1e-2 + 1e-7


def test_l1_and_l2_penalties_shrink_weights():
    def weight_norm(**penalty):
        cfg = TrainConfig(epochs=3, lr=1e-2, optimizer="sgd", **penalty, **FAST)
        model, _, _ = _fit(cfg, n=64)
        return model.head.weight.abs().sum().item()

    plain = weight_norm()
    assert weight_norm(l1=0.5) < plain
    assert weight_norm(l2=5.0) < plain


def test_multilabel_with_missing_labels():
    cfg = TrainConfig(task="multilabel", monitor="auprc", epochs=2, pos_weight="balanced", **FAST)
    torch.manual_seed(0)
    train, val = make_data(64, task="multilabel"), make_data(32, seed=1, task="multilabel")
    train["y"][::3, 1] = np.nan
    val["y"][::4, 0] = np.nan
    model = TinyGRU(n_outputs=2)
    result = Trainer(cfg).fit(model, train, val)
    assert np.isfinite(result.history[-1]["val_auprc"])
    assert Trainer(cfg).predict(model, val).shape == (32, 2)


def test_multiclass_and_regression_predictions():
    cfg = TrainConfig(task="multiclass", epochs=2, focal_alpha=None, **FAST)
    model, result, val = _fit(cfg, TinyGRU(n_outputs=3), n=64, task="multiclass")
    prob = Trainer(cfg).predict(model, val)
    assert prob.shape == (32, 3)
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, rtol=1e-5)
    assert "val_accuracy" in result.history[0]
    cfg = TrainConfig(task="regression", monitor="mae", epochs=2, **FAST)
    model, result, val = _fit(cfg, n=64, task="regression")
    assert Trainer(cfg).predict(model, val).shape == (32,)
    assert result.monitor == "val_mae" and "val_mse" in result.history[0]


def test_only_the_inputs_forward_accepts_are_passed():
    cfg = TrainConfig(epochs=1, **FAST)
    model, result, val = _fit(cfg, NoStatic(), n=64)
    assert len(result.history) == 1
    del val["mask"], val["static"]
    assert Trainer(cfg).predict(model, val).shape == (32,)


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (lambda d: d.pop("lengths"), ValueError, r"TinyGRU.forward requires 'lengths'"),
        (lambda d: d.pop("y"), ValueError, r"train is missing \['y'\]"),
        (lambda d: d.__setitem__("y", d["y"] * 2), ValueError, r"must be 0, 1 or NaN, got 2.0"),
        (lambda d: d.__setitem__("y", d["y"][:10]), ValueError, "disagree on the number"),
        (lambda d: d["lengths"].__setitem__(0, 99), ValueError, r"lengths'\] must be in \[1, 10\]"),
        (lambda d: d["values"].__setitem__((0, 0, 0), np.nan), ValueError, "NaN or inf"),
        (lambda d: d.__setitem__("values", d["values"][0]), ValueError, r"must be \(N, T, F\)"),
        (lambda d: d.__setitem__("y", list(d["y"])), TypeError, r"train\['y'\] must be a numpy"),
    ],
)
def test_bad_training_data_fails_early_with_a_clear_message(edit, error, message):
    train = make_data(32)
    edit(train)
    with pytest.raises(error, match=message):
        Trainer(TrainConfig(epochs=1, **FAST)).fit(TinyGRU(), train, make_data(16, seed=1))


def test_model_requiring_an_absent_input_is_named():
    class NeedsNotes(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(1, 1)

        def forward(self, values, notes):
            return self.linear(values[:, 0, :1])

    with pytest.raises(ValueError, match=r"NeedsNotes\.forward requires 'notes'"):
        _fit(TrainConfig(epochs=1, **FAST), NeedsNotes(), n=32)


def test_single_class_validation_cannot_be_monitored_by_auroc():
    val = make_data(16, seed=1)
    val["y"][:] = 1.0
    with pytest.raises(ValueError, match=r"one class only\. Use monitor='loss'"):
        Trainer(TrainConfig(monitor="auroc", **FAST)).fit(TinyGRU(), make_data(32), val)


def test_non_finite_loss_stops_with_advice():
    class Exploding(TinyGRU):
        def forward(self, values, mask, delta, lengths, static=None):
            return super().forward(values, mask, delta, lengths, static) * float("inf")

    with pytest.raises(FloatingPointError, match="epoch 1, batch 1: training loss is"):
        _fit(TrainConfig(epochs=1, **FAST), Exploding(), n=32)


def test_hyperparameters_are_logged(caplog):
    cfg = TrainConfig(epochs=1, lr=0.0123, **FAST)
    with caplog.at_level(logging.INFO, logger="medseq.training.trainer"):
        _fit(cfg, n=32)
    line = next(r.getMessage() for r in caplog.records if "hyperparameters" in r.getMessage())
    assert json.loads(line.split(": ", 1)[1]) == cfg.to_dict()
    assert any("epoch 1/1: train_loss=" in r.getMessage() for r in caplog.records)


class _FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("progress", [True, False])
def test_progress_bar_only_when_asked_and_on_a_terminal(monkeypatch, progress):
    fake = _FakeTTY()
    monkeypatch.setattr("sys.stderr", fake)
    _fit(TrainConfig(epochs=1, num_threads=1, progress=progress), n=32)
    assert ("val_loss=" in fake.getvalue()) == progress


def test_resume_after_a_finished_fit_changes_nothing(tmp_path):
    cfg = TrainConfig(epochs=3, lr=1e-2, checkpoint_dir=str(tmp_path), **FAST)
    model_a, result_a, val = _fit(cfg)
    torch.manual_seed(123)
    model_b = TinyGRU()
    result_b = Trainer(cfg).fit(model_b, make_data(96), val, resume=True)
    assert result_b.history == result_a.history
    for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    changed = TrainConfig(epochs=3, lr=0.5, checkpoint_dir=str(tmp_path), **FAST)
    with pytest.raises(ValueError, match=r"different TrainConfig \(lr: 0.01 -> 0.5\)"):
        Trainer(changed).fit(TinyGRU(), make_data(96), val, resume=True)


def test_resume_without_a_checkpoint_dir_is_an_error():
    with pytest.raises(ValueError, match=r"needs TrainConfig\.checkpoint_dir"):
        Trainer(TrainConfig(epochs=1, **FAST)).fit(
            TinyGRU(), make_data(32), make_data(16, seed=1), resume=True
        )
