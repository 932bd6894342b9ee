"""Reference cells against torch's fused kernels: outputs and gradients to 1e-5 (float32)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medseq.models import GRUCell, LSTMCell, RNNCell, cell_from_fused, run_cell

FUSED = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
CELLS = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}
ATOL = 1e-5


def _reference_stack(fused: nn.RNNBase, x: torch.Tensor) -> tuple[torch.Tensor, list[nn.Module]]:
    """A fused module's forward written as reference cells, per layer and direction."""
    cells: list[nn.Module] = []
    for layer in range(fused.num_layers):
        ahead = cell_from_fused(fused, layer)
        out = run_cell(ahead, x)[0]
        cells.append(ahead)
        if fused.bidirectional:
            behind = cell_from_fused(fused, layer, reverse=True)
            back = run_cell(behind, x.flip(1))[0].flip(1)
            out = torch.cat([out, back], dim=2)
            cells.append(behind)
        x = out
    return x, cells


def _fused_names(fused: nn.RNNBase) -> list[str]:
    names = []
    for layer in range(fused.num_layers):
        for suffix in [""] + ["_reverse"] * fused.bidirectional:
            names.append(f"_l{layer}{suffix}")
    return names


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize(("num_layers", "bidirectional"), [(1, False), (2, True)])
def test_reference_cells_match_fused_outputs_and_gradients(cell, num_layers, bidirectional):
    torch.manual_seed(0)
    fused = FUSED[cell](4, 6, num_layers=num_layers, bidirectional=bidirectional, batch_first=True)
    x = torch.randn(3, 7, 4, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    expected = fused(x)[0]
    got, cells = _reference_stack(fused, x_ref)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)

    weights = torch.randn_like(expected)
    (expected * weights).sum().backward()
    (got * weights).sum().backward()
    torch.testing.assert_close(x_ref.grad, x.grad, atol=ATOL, rtol=0)
    for ref_cell, suffix in zip(cells, _fused_names(fused), strict=True):
        for name, param in ref_cell.named_parameters():
            fused_grad = getattr(fused, name + suffix).grad
            torch.testing.assert_close(param.grad, fused_grad, atol=ATOL, rtol=0)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_final_state_matches_fused(cell):
    torch.manual_seed(1)
    fused = FUSED[cell](3, 5, batch_first=True)
    x = torch.randn(2, 9, 3)
    _, state = fused(x)
    _, ref_state = run_cell(cell_from_fused(fused), x)
    if cell == "lstm":
        torch.testing.assert_close(ref_state[0], state[0][0], atol=ATOL, rtol=0)
        torch.testing.assert_close(ref_state[1], state[1][0], atol=ATOL, rtol=0)
    else:
        torch.testing.assert_close(ref_state, state[0], atol=ATOL, rtol=0)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_cells_match_torch_cells(cell):
    torch.manual_seed(2)
    ref = CELLS[cell](3, 4)
    torch_cell = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}[cell](3, 4)
    torch_cell.load_state_dict(ref.state_dict())
    x = torch.randn(5, 3)
    h = torch.randn(5, 4)
    state = (h, torch.randn(5, 4)) if cell == "lstm" else h
    got, expected = ref(x, state), torch_cell(x, state)
    if cell == "lstm":
        for a, b in zip(got, expected, strict=True):
            torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    else:
        torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def test_parameter_shapes_follow_torch():
    cell = LSTMCell(3, 4, bias=False)
    assert cell.weight_ih.shape == (16, 3)
    assert cell.weight_hh.shape == (16, 4)
    assert cell.bias_ih is None and cell.bias_hh is None
    assert repr(cell) == "LSTMCell(3, 4, bias=False)"


def test_bad_input_names_expected_and_got():
    with pytest.raises(ValueError, match=r"expected input of shape \(B, 3\), got \(2, 5\)"):
        GRUCell(3, 4)(torch.randn(2, 5))
    with pytest.raises(ValueError, match="hidden_size must be >= 1, got 0"):
        RNNCell(3, 0)
    with pytest.raises(TypeError, match="input_size must be an int, got float"):
        RNNCell(3.0, 2)


def test_cell_from_fused_rejects_missing_layers():
    with pytest.raises(ValueError, match="no layer=1"):
        cell_from_fused(nn.GRU(2, 3), layer=1)
    with pytest.raises(ValueError, match="reverse=True"):
        cell_from_fused(nn.GRU(2, 3), reverse=True)
    with pytest.raises(ValueError, match="supports RNN"):
        cell_from_fused(nn.RNN(2, 3, nonlinearity="relu"))
