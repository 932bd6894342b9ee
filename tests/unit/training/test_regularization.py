import pytest
import torch
from torch import nn

from medseq.training import l1_penalty, l2_penalty, regularization_penalty


def _linear() -> nn.Linear:
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.0]]))
        layer.bias.fill_(10.0)
    return layer


def test_penalties_cover_weights_not_biases():
    layer = _linear()
    assert l1_penalty(layer).item() == pytest.approx(3.5)
    assert l2_penalty(layer).item() == pytest.approx(5.25)


def test_combined_penalty_and_gradient():
    layer = _linear()
    penalty = regularization_penalty(layer, l1=0.1, l2=0.01)
    assert penalty.item() == pytest.approx(0.35 + 0.0525)
    penalty.backward()
    expected = 0.1 * torch.sign(layer.weight) + 0.02 * layer.weight
    torch.testing.assert_close(layer.weight.grad, expected.detach())
    assert layer.bias.grad is None


def test_no_penalty_is_none():
    assert regularization_penalty(_linear()) is None
    with pytest.raises(ValueError, match="l1=-1"):
        regularization_penalty(_linear(), l1=-1)
