"""ConvRNN's optional static input (summary fusion): default off and unchanged, checked
shapes, padding-safe, chunked inference, trainer passes it through."""

import json

import numpy as np
import pytest
import torch

from medseq.models.conv_rnn import ConvRNN, SignalModelConfig
from medseq.training import TrainConfig, Trainer

BEATS = {"conv_channels": (), "conv_strides": (), "in_channels": 5, "hidden_size": 8}


def _model(**overrides) -> ConvRNN:
    torch.manual_seed(0)
    return ConvRNN(SignalModelConfig(**{**BEATS, **overrides})).eval()


def test_default_is_the_model_without_static_input():
    config = SignalModelConfig(**BEATS)
    assert "static_size" not in config.to_dict() and "static_hidden_size" not in config.to_dict()
    plain = _model()
    assert not hasattr(plain, "static_net")
    assert plain.output.in_features == 8
    with pytest.raises(ValueError, match="build it with static_size"):
        plain(torch.randn(2, 6, 5), torch.tensor([6, 3]), torch.randn(2, 3))


def test_static_fusion_shapes_padding_and_chunks():
    model = _model(static_size=3, static_hidden_size=4, n_outputs=4)
    config = model.config
    assert SignalModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert model.output.in_features == 8 + 4
    x, lengths, static = torch.randn(2, 7, 5), torch.tensor([7, 4]), torch.randn(2, 3)
    out = model(x, lengths, static)
    assert out.shape == (2, 4)
    x[1, 4:] = 9.0  # padding never matters
    torch.testing.assert_close(model(x, lengths, static), out)
    other = static.clone()
    other[0] += 1.0
    changed = model(x, lengths, other)
    assert not torch.allclose(changed[0], out[0]) and torch.allclose(changed[1], out[1])
    with torch.no_grad():
        chunked = model.chunked_forward(x[:1], chunk_samples=3, static=static[:1])
    torch.testing.assert_close(chunked, out[:1], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"static of shape \(2, 3\), got None"):
        model(x, lengths)
    with pytest.raises(ValueError, match=r"static of shape \(2, 3\), got \(2, 2\)"):
        model(x, lengths, torch.randn(2, 2))
    with pytest.raises(ValueError, match="needs mode='recording'"):
        SignalModelConfig(**BEATS, static_size=3, mode="sequence")
    with pytest.raises(ValueError, match="static_size must be >= 0"):
        SignalModelConfig(**BEATS, static_size=-1)


def test_trainer_feeds_static_and_learns_from_it():
    # the label is in the static vector only: the model must use it to fit
    rng = np.random.default_rng(0)
    n = 96
    y = rng.integers(0, 2, n)
    static = np.stack([y * 2.0 - 1.0, rng.standard_normal(n)], axis=1).astype(np.float32)
    arrays = {
        "values": rng.standard_normal((n, 6, 5)).astype(np.float32),
        "lengths": np.full(n, 6, np.int64),
        "static": static,
        "y": y.astype(np.float32),
    }
    torch.manual_seed(0)
    model = ConvRNN(SignalModelConfig(**BEATS, static_size=2, n_outputs=2))
    config = {"task": "multiclass", "epochs": 15, "lr": 1e-2, "batch_size": 32}
    trainer = Trainer(TrainConfig.from_dict({**config, "progress": False, "num_threads": 1}))
    trainer.fit(model, arrays, arrays)
    prob = trainer.predict(model, arrays)
    assert (np.argmax(prob, axis=1) == y).mean() > 0.95
