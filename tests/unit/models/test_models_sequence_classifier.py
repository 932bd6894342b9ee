"""SequenceClassifier and its padding-safe bidirectional encoder."""

from __future__ import annotations

import pytest
import torch
from model_batches import make_batch, pad_batch
from torch import nn

from medseq.models import ModelConfig, RecurrentEncoder, SequenceClassifier


def _copy_fused_into_encoder(fused: nn.RNNBase, encoder: RecurrentEncoder) -> None:
    with torch.no_grad():
        for k in range(fused.num_layers):
            for suffix, layers in (
                ("", encoder.forward_layers),
                ("_reverse", encoder.backward_layers),
            ):
                for name, param in layers[k].named_parameters():
                    param.copy_(getattr(fused, name.replace("_l0", f"_l{k}") + suffix))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_bidirectional_encoder_equals_fused_module_without_padding(cell):
    torch.manual_seed(0)
    fused_cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
    fused = fused_cls(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    encoder = RecurrentEncoder(cell, 3, 4, num_layers=2, bidirectional=True)
    _copy_fused_into_encoder(fused, encoder)
    x = torch.randn(2, 5, 3)
    full = torch.full((2,), 5, dtype=torch.int64)
    torch.testing.assert_close(encoder(x, full), fused(x)[0], atol=1e-5, rtol=0)


def test_bidirectional_encoder_equals_fused_module_on_each_unpadded_sequence():
    torch.manual_seed(1)
    fused = nn.GRU(3, 4, bidirectional=True, batch_first=True)
    encoder = RecurrentEncoder("gru", 3, 4, bidirectional=True)
    _copy_fused_into_encoder(fused, encoder)
    x = torch.randn(3, 6, 3)
    lengths = torch.tensor([6, 2, 4])
    out = encoder(x, lengths)
    for b, n in enumerate(lengths.tolist()):
        alone = fused(x[b : b + 1, :n])[0][0]
        torch.testing.assert_close(out[b, :n], alone, atol=1e-5, rtol=0)


def test_naive_fused_bidirectional_would_leak_padding():
    """Why the encoder reverses within lengths: torch's backward direction reads the padding."""
    torch.manual_seed(2)
    fused = nn.GRU(3, 4, bidirectional=True, batch_first=True)
    x = torch.randn(1, 4, 3)
    padded = torch.cat([x, torch.zeros(1, 3, 3)], dim=1)
    leak = (fused(padded)[0][0, 0, 4:] - fused(x)[0][0, 0, 4:]).abs().max()
    assert leak > 1e-3


def test_return_attention_gives_weights_over_valid_steps():
    model = SequenceClassifier(ModelConfig(input_size=4, pooling="attention", hidden_size=5))
    batch = make_batch(static_size=0, lengths=[6, 2, 3])
    logits, weights = model(**batch, return_attention=True)
    assert logits.shape == (3, 1) and weights.shape == (3, 6)
    assert (weights[1, 2:] == 0).all() and (weights[2, 3:] == 0).all()
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3))
    torch.testing.assert_close(logits, model(**batch))


def test_return_attention_needs_attention_pooling():
    model = SequenceClassifier(ModelConfig(input_size=4, hidden_size=5))
    with pytest.raises(ValueError, match="return_attention=True needs pooling='attention'"):
        model(**make_batch(static_size=0), return_attention=True)


def test_static_is_fused():
    torch.manual_seed(0)
    model = SequenceClassifier(ModelConfig(input_size=4, hidden_size=5, static_size=3)).eval()
    batch = make_batch()
    other = dict(batch, static=batch["static"] + 1.0)
    assert not torch.allclose(model(**batch), model(**other))


@pytest.mark.parametrize(("flag", "key"), [("input_mask", "mask"), ("input_delta", "delta")])
def test_mask_and_delta_inputs_follow_the_flags(flag, key):
    batch = make_batch(static_size=0)
    changed = dict(batch, **{key: batch[key] + 0.5 * batch["mask"]})
    for on in (False, True):
        torch.manual_seed(0)
        fields = {"input_mask": False, "input_delta": False, flag: on}
        model = SequenceClassifier(ModelConfig(input_size=4, hidden_size=5, **fields))
        same = torch.equal(model(**batch), model(**changed))
        assert same is not on


def test_dropout_is_active_in_train_mode_only():
    torch.manual_seed(0)
    config = ModelConfig(input_size=4, hidden_size=16, num_layers=2, dropout=0.5)
    model = SequenceClassifier(config)
    batch = make_batch(static_size=0)
    assert not torch.equal(model(**batch), model(**batch))
    model.eval()
    assert torch.equal(model(**batch), model(**batch))


def _bad(batch, **changes):
    return dict(batch, **changes)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: _bad(b, values=b["values"][..., :3]), r"values must have shape \(B, T, 4\)"),
        (lambda b: _bad(b, mask=b["mask"][:, :5]), r"mask must have the shape of values"),
        (lambda b: _bad(b, delta=b["delta"][:2]), r"delta must have the shape of values"),
        (lambda b: _bad(b, lengths=b["lengths"].float()), "lengths must be an integer tensor"),
        (lambda b: _bad(b, lengths=b["lengths"][:2]), r"lengths must be .* shape \(3,\)"),
        (lambda b: _bad(b, lengths=torch.tensor([6, 0, 2])), r"lengths must be in \[1, T=6\]"),
        (lambda b: _bad(b, lengths=torch.tensor([7, 1, 2])), r"lengths must be in \[1, T=6\]"),
        (lambda b: _bad(b, static=None), r"static of shape \(3, 3\) is required"),
        (lambda b: _bad(b, static=b["static"][:, :2]), r"static must have shape \(3, 3\)"),
    ],
)
def test_bad_inputs_name_argument_expected_and_got(change, message):
    model = SequenceClassifier(ModelConfig(input_size=4, hidden_size=5, static_size=3))
    with pytest.raises(ValueError, match=message):
        model(**change(make_batch()))


def test_static_given_without_static_size_is_refused():
    model = SequenceClassifier(ModelConfig(input_size=4, hidden_size=5))
    with pytest.raises(ValueError, match="build with static_size=S"):
        model(**make_batch())
    batch = make_batch(static_size=0)
    model(**batch, static=torch.zeros(3, 0))  # an empty static vector is fine


def test_wrong_config_kind_and_type():
    with pytest.raises(ValueError, match=r"needs config\.kind='rnn_classifier', got 'grud'"):
        SequenceClassifier(ModelConfig(input_size=4, kind="grud"))
    with pytest.raises(TypeError, match="config must be a ModelConfig, got dict"):
        SequenceClassifier({"input_size": 4})


def test_padding_beyond_t_changes_nothing_for_bidirectional_last():
    torch.manual_seed(0)
    config = ModelConfig(input_size=4, hidden_size=5, bidirectional=True, cell="lstm")
    model = SequenceClassifier(config).eval()
    batch = make_batch(static_size=0)
    torch.testing.assert_close(model(**pad_batch(batch, 5, 7.0)), model(**batch), atol=1e-5, rtol=0)


def test_repr_names_the_choices():
    text = repr(SequenceClassifier(ModelConfig(input_size=4, hidden_size=5, bidirectional=True)))
    assert "pooling='last'" in text and "bidirectional=True" in text


@pytest.mark.filterwarnings("ignore:The tensor attributes .*_flat_weights")  # torch's nn.LSTM
def test_torch_export_gives_the_same_logits():
    torch.manual_seed(0)
    config = ModelConfig(input_size=4, hidden_size=5, cell="lstm", bidirectional=True)
    model = SequenceClassifier(config).eval()
    exported = torch.export.export(model, (), kwargs=make_batch(static_size=0))
    other = make_batch(static_size=0, seed=1)
    torch.testing.assert_close(exported.module()(**other), model(**other), atol=1e-6, rtol=0)
