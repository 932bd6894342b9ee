"""The fused GRU training path equals ``nn.GRU`` and the reference cell, forward and gradients."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from medseq.models import ModelConfig, build_model
from medseq.models.cells import cell_from_fused, run_cell
from medseq.models.fused_gru import fused_gru
from medseq.models.fused_select import ENV_VAR, MODES, current_mode, fused_gru_mode, use_fused_gru
from medseq.training.config import FUSED_GRU_MODES, TrainConfig


def _grads(out: Tensor, h_n, inputs, seed: int = 0) -> tuple:
    """Gradients of a random linear function of both outputs (every element matters)."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(out.shape, generator=gen, dtype=out.dtype)
    v = torch.randn(h_n.shape, generator=gen, dtype=h_n.dtype)
    return torch.autograd.grad((out * w).sum() + (h_n * v).sum(), inputs)


def _compare(gru: nn.GRU, x: Tensor, h0: Tensor | None, atol: float) -> None:
    inputs = [x, *gru.parameters()] + ([h0] if h0 is not None else [])
    expected = gru(x, h0)
    got = fused_gru(gru, x, h0)
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e, atol=atol, rtol=0)
    for e, g in zip(_grads(*expected, inputs), _grads(*got, inputs), strict=True):
        torch.testing.assert_close(g, e, atol=atol, rtol=0)


CASES = [  # (input, hidden, layers, bidirectional, batch_first, bias, batch, steps, h0)
    (7, 5, 1, False, True, True, 3, 9, False),
    (3, 11, 2, True, True, True, 4, 6, True),
    (5, 4, 3, True, False, True, 2, 5, False),
    (1, 1, 1, False, True, True, 1, 1, False),  # hidden 1, batch 1, one step
    (6, 3, 2, False, False, False, 1, 13, True),  # no bias
    (2, 9, 1, True, True, True, 5, 1, True),  # one step, bidirectional
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_equals_nn_gru(case, dtype):
    i, h, layers, bidir, batch_first, bias, b, t, with_h0 = case
    torch.manual_seed(1)
    gru = nn.GRU(i, h, layers, bias=bias, batch_first=batch_first, bidirectional=bidir)
    gru = gru.to(dtype)
    shape = (b, t, i) if batch_first else (t, b, i)
    x = torch.randn(shape, dtype=dtype, requires_grad=True)
    h0 = torch.randn(layers * (1 + bidir), b, h, dtype=dtype, requires_grad=True)
    _compare(gru, x, h0 if with_h0 else None, atol=1e-12 if dtype == torch.float64 else 2e-5)


def test_fused_equals_reference_cell():
    torch.manual_seed(2)
    gru = nn.GRU(4, 6, batch_first=True).double()
    cell = cell_from_fused(gru)
    x = torch.randn(3, 8, 4, dtype=torch.float64, requires_grad=True)
    ref_out, ref_h = run_cell(cell, x)
    out, h_n = fused_gru(gru, x)
    torch.testing.assert_close(out, ref_out, atol=1e-12, rtol=0)
    ref = _grads(ref_out, ref_h.unsqueeze(0), [x, *cell.parameters()])
    got = _grads(out, h_n, [x, *gru.parameters()])
    for e, g in zip(ref, got, strict=True):
        torch.testing.assert_close(g, e, atol=1e-12, rtol=0)


@settings(max_examples=25, deadline=None)
@given(
    i=st.integers(1, 9),
    h=st.integers(1, 9),
    layers=st.integers(1, 3),
    bidir=st.booleans(),
    b=st.integers(1, 5),
    t=st.integers(1, 7),
    seed=st.integers(0, 1000),
)
def test_fused_equals_nn_gru_property(i, h, layers, bidir, b, t, seed):
    torch.manual_seed(seed)
    gru = nn.GRU(i, h, layers, batch_first=True, bidirectional=bidir).double()
    x = torch.randn(b, t, i, dtype=torch.float64, requires_grad=True)
    _compare(gru, x, None, atol=1e-11)


def test_fused_only_gradients_of_used_outputs():
    """Using only ``h_n`` (or only the outputs) still gives nn.GRU's gradients."""
    torch.manual_seed(3)
    gru = nn.GRU(3, 4, 2).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    expected = torch.autograd.grad(gru(x)[1].sum(), [x, *gru.parameters()])
    got = torch.autograd.grad(fused_gru(gru, x)[1].sum(), [x, *gru.parameters()])
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e, atol=1e-12, rtol=0)


def test_fused_refuses_other_modules():
    with pytest.raises(TypeError, match=r"expected an nn\.GRU, got LSTM"):
        fused_gru(nn.LSTM(2, 3), torch.randn(4, 1, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"expected x of shape \(B, T, 2\)"):
        fused_gru(nn.GRU(2, 3, batch_first=True), torch.randn(4, 1, 5))


def _uses_fused(tensor: Tensor) -> bool:
    """Whether the autograd graph of ``tensor`` holds a fused GRU node."""
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if "FusedGRULayer" in type(node).__name__:
            return True
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return False


def _batch(b=4, t=7, f=3, lengths=(7, 1, 4, 6), seed=0):
    gen = torch.Generator().manual_seed(seed)
    values = torch.randn(b, t, f, generator=gen)
    mask = (torch.rand(b, t, f, generator=gen) > 0.4).float()
    delta = torch.rand(b, t, f, generator=gen)
    return {"values": values, "mask": mask, "delta": delta, "lengths": torch.tensor(lengths)}


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"bidirectional": True, "num_layers": 2, "pooling": "mean"},
        {"num_layers": 3, "hidden_size": 5, "pooling": "attention", "input_delta": True},
    ],
)
def test_model_same_logits_and_gradients_with_fused_path(overrides):
    torch.manual_seed(0)
    model = build_model(ModelConfig(input_size=3, **({"hidden_size": 6} | overrides))).train()
    keys = list(model.state_dict())
    batch = _batch()
    results = []
    for mode in ("off", "on"):
        model.zero_grad()
        with fused_gru_mode(mode):
            logits = model(**batch)
        assert _uses_fused(logits) == (mode == "on")
        logits.square().sum().backward()
        results.append((logits.detach(), [p.grad.clone() for p in model.parameters()]))
    (ref, ref_grads), (got, got_grads) = results
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)
    for e, g in zip(ref_grads, got_grads, strict=True):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-4)
    assert list(model.state_dict()) == keys  # same parameters, same names


def test_selection_rules(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    gru = nn.GRU(2, 3, batch_first=True)
    x = torch.randn(2, 4, 2)
    assert current_mode() == "off" and not use_fused_gru(gru, x)  # the default
    with fused_gru_mode("auto"):
        assert use_fused_gru(gru, x)
        assert not use_fused_gru(nn.LSTM(2, 3), x)
        with torch.no_grad():
            assert not use_fused_gru(gru, x)  # inference keeps nn.GRU
        assert not use_fused_gru(gru.half(), x.half())  # auto: float32/64 only
        assert not use_fused_gru(nn.GRU(2, 257, batch_first=True), x)  # not measured beyond 256
        with fused_gru_mode("on"):
            assert use_fused_gru(nn.GRU(2, 257, batch_first=True), x)
    monkeypatch.setenv(ENV_VAR, "auto")
    assert current_mode() == "auto"
    with fused_gru_mode("off"):
        assert current_mode() == "off"  # the innermost block wins over the environment
    monkeypatch.setenv(ENV_VAR, "fast")
    with pytest.raises(ValueError, match="MEDSEQ_FUSED_GRU must be one of"):
        current_mode()
    with pytest.raises(ValueError, match=r"fused_gru_mode\(mode\) must be one of"):
        fused_gru_mode("yes").__enter__()


def test_train_config_flag():
    assert FUSED_GRU_MODES == MODES
    assert TrainConfig().fused_gru is None
    assert TrainConfig.from_json(TrainConfig(fused_gru="auto").to_json()).fused_gru == "auto"
    with pytest.raises(ValueError, match=r"TrainConfig\.fused_gru must be one of"):
        TrainConfig(fused_gru="fast")
