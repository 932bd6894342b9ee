"""Pooling over valid steps only."""

from __future__ import annotations

import pytest
import torch

from medseq.models.pooling import AdditiveAttention, Pooling, last_pool, mean_pool, valid_steps
from medseq.models.sequence_classifier import reverse_within_length

LENGTHS = torch.tensor([4, 1, 3])


def _outputs() -> torch.Tensor:
    torch.manual_seed(0)
    out = torch.randn(3, 4, 6)
    out[1, 1:] = float("nan")  # padding may hold anything
    out[2, 3:] = float("inf")
    return out


def test_valid_steps():
    expected = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    assert torch.equal(valid_steps(LENGTHS, 4), expected)


def test_last_pool_takes_lengths_minus_one():
    out = _outputs()
    pooled = last_pool(out, LENGTHS)
    assert torch.equal(pooled, torch.stack([out[0, 3], out[1, 0], out[2, 2]]))


def test_last_pool_backward_half_at_step_zero():
    out = _outputs()
    pooled = last_pool(out, LENGTHS, backward_size=2)
    assert torch.equal(pooled[:, :4], last_pool(out[..., :4], LENGTHS))
    assert torch.equal(pooled[:, 4:], out[:, 0, 4:])


def test_mean_pool_ignores_padding():
    out = _outputs()
    pooled = mean_pool(out, LENGTHS)
    for b, n in enumerate(LENGTHS.tolist()):
        torch.testing.assert_close(pooled[b], out[b, :n].mean(dim=0))


def test_attention_weights_are_a_distribution_over_valid_steps():
    torch.manual_seed(0)
    attention = AdditiveAttention(6, 5)
    out = _outputs()
    pooled, weights = attention(out, LENGTHS)
    assert torch.isfinite(pooled).all()
    assert torch.equal(weights == 0, ~valid_steps(LENGTHS, 4))
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3))
    torch.testing.assert_close(pooled[1], out[1, 0])  # one valid step: all weight on it
    expected = (weights[0].unsqueeze(1) * out[0]).sum(dim=0)
    torch.testing.assert_close(pooled[0], expected)


def test_pooling_rejects_unknown_mode():
    with pytest.raises(ValueError, match=r"pooling must be one of .*got 'max'"):
        Pooling("max", 4)


def test_reverse_within_length_is_an_involution_that_keeps_padding():
    x = torch.arange(12.0).view(3, 4, 1)
    rev = reverse_within_length(x, LENGTHS)
    assert rev[0, :, 0].tolist() == [3.0, 2.0, 1.0, 0.0]
    assert rev[1, :, 0].tolist() == [4.0, 5.0, 6.0, 7.0]
    assert rev[2, :, 0].tolist() == [10.0, 9.0, 8.0, 11.0]
    assert torch.equal(reverse_within_length(rev, LENGTHS), x)
