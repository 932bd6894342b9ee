"""Parameter counts pinned to the formulas of the papers and of torch."""

from __future__ import annotations

import pytest

from medseq.models import GRUD, ModelConfig, SequenceClassifier, build_model

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _recurrent(cell: str, input_size: int, hidden: int) -> int:
    """G * (H*I + H*H + 2H): weight_ih, weight_hh, bias_ih, bias_hh."""
    return GATES[cell] * (hidden * input_size + hidden * hidden + 2 * hidden)


def test_gru_one_layer_pinned():
    # F = 37 features and their mask: I = 74, H = 64; head 64 -> 1
    model = SequenceClassifier(ModelConfig(input_size=37, hidden_size=64))
    assert _count(model.encoder) == 3 * (64 * 74 + 64 * 64 + 2 * 64) == 26_880
    assert _count(model) == 26_880 + 64 + 1


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_encoder_matches_formula(cell, num_layers, bidirectional):
    config = ModelConfig(
        input_size=5, cell=cell, hidden_size=6, num_layers=num_layers, bidirectional=bidirectional
    )
    directions = 2 if bidirectional else 1
    expected = directions * _recurrent(cell, 10, 6)
    expected += (num_layers - 1) * directions * _recurrent(cell, 6 * directions, 6)
    assert _count(SequenceClassifier(config).encoder) == expected


def test_pooling_and_static_head():
    config = ModelConfig(
        input_size=5,
        hidden_size=6,
        bidirectional=True,
        pooling="attention",
        attention_size=4,
        static_size=3,
        static_hidden_size=7,
        n_outputs=2,
    )
    model = SequenceClassifier(config)
    d = 12  # 2 directions x H
    assert _count(model.pooling) == d * 4 + 4 + 4  # W (A, D), b (A,), v (A,)
    assert _count(model.head) == (3 * 7 + 7) + (d + 7) * 2 + 2


def test_grud_matches_formula():
    f, h = 37, 64
    model = build_model(ModelConfig(input_size=f, kind="grud", hidden_size=h))
    assert isinstance(model, GRUD)
    gru = 3 * (h * 2 * f + h * h + 2 * h)  # gates read [x_hat; m]
    decays = 2 * f + (f * h + h)  # diagonal gamma_x (w, b); full gamma_h
    assert _count(model) == gru + decays + h + 1 == 29_451
