"""Orthogonal recurrent blocks, Xavier input blocks, zero biases, LSTM forget bias 1."""

from __future__ import annotations

import math

import pytest
import torch
from model_batches import COMBOS, combo_id, tiny_config
from torch import nn

from medseq.models import GRUD, LSTMCell, build_model, init_recurrent_


def _groups(model: nn.Module):
    """(module, suffix, weight_hh) for every recurrent weight group."""
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if name.startswith("weight_hh"):
                yield module, name[len("weight_hh") :], param


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_every_recurrent_gate_block_is_orthogonal(combo):
    torch.manual_seed(0)
    model = build_model(tiny_config(combo, hidden_size=7))
    groups = list(_groups(model))
    assert groups, "no recurrent weights found"
    for _, _, weight in groups:
        hidden = weight.shape[1]
        for block in weight.detach().split(hidden, dim=0):
            torch.testing.assert_close(block.T @ block, torch.eye(hidden), atol=1e-5, rtol=0)


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_biases_zero_except_lstm_forget_gate(combo):
    model = build_model(tiny_config(combo))
    for module, suffix, weight in _groups(model):
        hidden = weight.shape[1]
        bias_ih = getattr(module, "bias_ih" + suffix).detach()
        bias_hh = getattr(module, "bias_hh" + suffix).detach()
        assert (bias_hh == 0).all()
        expected = torch.zeros_like(bias_ih)
        if isinstance(module, (nn.LSTM, LSTMCell)):
            expected[hidden : 2 * hidden] = 1.0
        assert torch.equal(bias_ih, expected)


def test_input_blocks_are_xavier_uniform():
    torch.manual_seed(0)
    gru = nn.GRU(200, 100)
    init_recurrent_(gru)
    for block in gru.weight_ih_l0.detach().split(100, dim=0):
        bound = math.sqrt(6.0 / (200 + 100))
        assert block.abs().max() <= bound
        assert block.std().item() == pytest.approx(bound / math.sqrt(3.0), rel=0.05)


def test_count_one_group_per_layer_and_direction():
    assert init_recurrent_(nn.LSTM(3, 4, num_layers=2, bidirectional=True)) == 4
    assert init_recurrent_(LSTMCell(3, 4)) == 1


def test_default_init_keeps_torch_initialisation():
    torch.manual_seed(0)
    config = tiny_config(("grud", "gru", False, "last"), init="default", hidden_size=7)
    weight = GRUD(config).weight_hh.detach()[:7]
    assert not torch.allclose(weight.T @ weight, torch.eye(7), atol=1e-2)
    assert weight.abs().max() <= 1 / math.sqrt(7)
