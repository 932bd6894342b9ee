"""Truncated BPTT: the state is carried across chunks and the gradient stops at the border."""

import numpy as np
import pytest
import torch

from medseq.models.conv_rnn import ConvRNN, SignalModelConfig
from medseq.training import TrainConfig, Trainer
from medseq.training.losses import MaskedCrossEntropyLoss
from medseq.training.tbptt import tbptt_backward, tbptt_forward, window_start

CONFIG = SignalModelConfig(
    conv_channels=(4,), conv_strides=(4,), kernel_size=5, hidden_size=8, n_outputs=3
)


def _model() -> ConvRNN:
    torch.manual_seed(0)
    return ConvRNN(CONFIG).eval()


def _reset_per_chunk(model: ConvRNN, x: torch.Tensor, chunk: int) -> torch.Tensor:
    pool = None
    for start in range(0, x.shape[1], chunk):
        outputs, _ = model.forward_chunk(x[:, start : start + chunk], model.init_state())
        pool = model.pool_update(pool, outputs)
    return model.pool_logits(pool)


def test_carried_state_gives_the_full_sequence_logits_and_reset_does_not():
    model = _model()
    x = torch.randn(2, 400, 1)
    lengths = torch.tensor([400, 400])
    full = model(x, lengths)
    carried = tbptt_forward(model, x, lengths, tbptt_steps=10)
    torch.testing.assert_close(carried, full, atol=1e-5, rtol=1e-5)
    reset = _reset_per_chunk(model, x, chunk=40)
    assert (reset - full).abs().max().item() > 1e-3


def test_gradient_stops_at_the_window_border():
    model = _model()
    x = torch.randn(1, 400, 1, requires_grad=True)
    lengths = torch.tensor([400])
    tbptt_forward(model, x, lengths, tbptt_steps=10).sum().backward()
    border = window_start(400, 10 * 4, 4)
    assert border == 360
    assert x.grad[:, :border].abs().max().item() == 0.0
    assert x.grad[:, border:].abs().max().item() > 0.0
    x.grad = None
    model(x, lengths).sum().backward()  # full BPTT reaches the start of the record
    assert x.grad[:, :border].abs().max().item() > 0.0


def test_tbptt_needs_unpadded_batches_and_a_stateful_model():
    model = _model()
    with pytest.raises(ValueError, match="unpadded"):
        tbptt_forward(model, torch.randn(2, 80, 1), torch.tensor([80, 40]), tbptt_steps=4)
    with pytest.raises(ValueError, match="tbptt_steps"):
        TrainConfig(tbptt_steps=0)
    data = _data(8)
    trainer = Trainer(TrainConfig(task="multiclass", epochs=1, tbptt_steps=4, progress=False))
    with pytest.raises(ValueError, match="carries state across chunks"):
        trainer.fit(_Stateless(), data, data)
    bidirectional = ConvRNN(SignalModelConfig(**{**CONFIG.to_dict(), "bidirectional": True}))
    with pytest.raises(ValueError, match="unidirectional"):
        trainer.fit(bidirectional, data, data)


class _Stateless(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(1, 3)

    def forward(self, values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.linear(values.mean(dim=1))


def _data(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    # Class = frequency of a noisy tone: learnable from any window of the record.
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    t = np.arange(320) / 100.0
    values = np.sin(2 * np.pi * (1.0 + 3.0 * y)[:, None] * t[None, :])
    values = values + 0.1 * rng.normal(size=values.shape)
    return {
        "values": values[:, :, None].astype(np.float32),
        "lengths": np.full(n, 320, dtype=np.int64),
        "y": y.astype(np.float32),
    }


def test_trainer_fits_with_tbptt(tmp_path):
    config = TrainConfig(
        task="multiclass",
        epochs=8,
        batch_size=16,
        lr=1e-2,
        monitor="loss",
        patience=None,
        tbptt_steps=20,
        progress=False,
        checkpoint_dir=str(tmp_path),
        device="cpu",
    )
    model = ConvRNN(CONFIG)
    result = Trainer(config).fit(model, _data(96), _data(48, seed=1))
    losses = [r["train_loss"] for r in result.history]
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0]
    assert TrainConfig.from_json(config.to_json()).tbptt_steps == 20


def test_tbptt_passes_the_static_input_of_a_fused_model():
    fused = SignalModelConfig(**{**CONFIG.to_dict(), "static_size": 2, "static_hidden_size": 4})
    torch.manual_seed(0)
    model = ConvRNN(fused).eval()
    x, lengths = torch.randn(3, 400, 1), torch.tensor([400, 400, 400])
    static = torch.randn(3, 2)
    full = model(x, lengths, static)
    torch.testing.assert_close(tbptt_forward(model, x, lengths, 10, static), full)
    with pytest.raises(ValueError, match="expects static"):
        tbptt_forward(model, x, lengths, 10)
    # trained through the Trainer: the static input decides the class, the signal is noise
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=96)
    data = {
        "values": rng.normal(size=(96, 320, 1)).astype(np.float32),
        "lengths": np.full(96, 320, dtype=np.int64),
        "static": np.stack([2.0 * y - 1.0, rng.normal(size=96)], axis=1).astype(np.float32),
        "y": y.astype(np.float32),
    }
    config = TrainConfig(
        task="multiclass", epochs=15, batch_size=16, lr=1e-2, patience=None, tbptt_steps=10,
        progress=False, num_threads=1,
    )  # fmt: skip
    fused2 = SignalModelConfig(**{**fused.to_dict(), "n_outputs": 2})
    torch.manual_seed(0)
    model = ConvRNN(fused2)
    trainer = Trainer(config)
    trainer.fit(model, data, data)
    accuracy = np.mean(trainer.predict(model, data).argmax(axis=1) == y)
    assert accuracy > 0.9


SEQUENCE = SignalModelConfig(**{**CONFIG.to_dict(), "mode": "sequence"})


def _sequence_batch(seed: int = 0):
    torch.manual_seed(seed)
    x = torch.randn(2, 400, 1)
    y = torch.randint(0, 3, (2, 100)).float()
    y[:, ::3] = float("nan")  # unlabelled steps
    return x, torch.tensor([400, 400]), y


def test_sequence_tbptt_loss_equals_the_full_pass_loss():
    torch.manual_seed(0)
    model = ConvRNN(SEQUENCE).eval()
    x, lengths, y = _sequence_batch()
    loss_fn = MaskedCrossEntropyLoss()
    full = loss_fn(model(x, lengths), y)
    chunked = tbptt_backward(model, x, lengths, y, loss_fn, tbptt_steps=16)
    assert abs(chunked.item() - full.item()) < 1e-5
    weighted = MaskedCrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5]))
    full = weighted(model(x, lengths), y)
    chunked = tbptt_backward(model, x, lengths, y, weighted, tbptt_steps=16)
    assert abs(chunked.item() - full.item()) < 1e-5


def test_sequence_tbptt_gradient_stays_in_its_chunk():
    torch.manual_seed(0)
    model = ConvRNN(SEQUENCE).eval()
    x, lengths, y = _sequence_batch()
    y[:, :80] = float("nan")  # labels only in the last chunk (steps 80..99)
    x.requires_grad_(True)
    tbptt_backward(model, x, lengths, y, MaskedCrossEntropyLoss(), tbptt_steps=20)
    border = 80 * SEQUENCE.total_stride
    assert x.grad[:, :border].abs().max().item() == 0.0
    assert x.grad[:, border:].abs().max().item() > 0.0
    x.grad = None
    MaskedCrossEntropyLoss()(model(x, lengths), y).backward()
    assert x.grad[:, :border].abs().max().item() > 0.0
    with pytest.raises(ValueError, match=r"y of shape \(B, 100\)"):
        tbptt_backward(model, x, lengths, y[:, :50], MaskedCrossEntropyLoss(), tbptt_steps=20)


def test_trainer_fits_sequence_labelling_with_tbptt():
    data = _data(64)
    data["y"] = np.repeat(data["y"][:, None], 80, axis=1)  # 320 samples / stride 4
    data["y"][:, :5] = np.nan  # the first steps have seen too little of the tone
    config = TrainConfig(
        task="multiclass",
        epochs=6,
        batch_size=16,
        lr=1e-2,
        patience=None,
        tbptt_steps=20,
        progress=False,
        device="cpu",
    )
    trainer = Trainer(config)
    result = trainer.fit(ConvRNN(SEQUENCE), data, data)
    losses = [r["train_loss"] for r in result.history]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    assert 0.0 <= result.history[-1]["val_accuracy"] <= 1.0
