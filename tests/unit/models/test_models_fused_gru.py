"""The fused GRU training path equals ``nn.GRU`` and the reference cell, forward and gradients.

Every equality test runs over both recurrence kernels: the Python loop and the compiled C++
one (``csrc/fused_gru_step.cpp``; a machine that cannot build it fails the ``compiled``
cases with the compiler's message rather than skipping them).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from medseq.models import ModelConfig, build_model, fused_gru_compiled
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


#: The two implementations of the recurrence every equality test runs over.
KERNELS = ["python", "compiled"]


def _compare(gru: nn.GRU, x: Tensor, h0: Tensor | None, atol: float, kernel: str) -> None:
    inputs = [x, *gru.parameters()] + ([h0] if h0 is not None else [])
    expected = gru(x, h0)
    got = fused_gru(gru, x, h0, kernel=kernel)
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


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_equals_nn_gru(case, dtype, kernel):
    i, h, layers, bidir, batch_first, bias, b, t, with_h0 = case
    torch.manual_seed(1)
    gru = nn.GRU(i, h, layers, bias=bias, batch_first=batch_first, bidirectional=bidir)
    gru = gru.to(dtype)
    shape = (b, t, i) if batch_first else (t, b, i)
    x = torch.randn(shape, dtype=dtype, requires_grad=True)
    h0 = torch.randn(layers * (1 + bidir), b, h, dtype=dtype, requires_grad=True)
    atol = 1e-12 if dtype == torch.float64 else 2e-5
    _compare(gru, x, h0 if with_h0 else None, atol, kernel)


@pytest.mark.parametrize("kernel", KERNELS)
def test_fused_equals_reference_cell(kernel):
    torch.manual_seed(2)
    gru = nn.GRU(4, 6, batch_first=True).double()
    cell = cell_from_fused(gru)
    x = torch.randn(3, 8, 4, dtype=torch.float64, requires_grad=True)
    ref_out, ref_h = run_cell(cell, x)
    out, h_n = fused_gru(gru, x, kernel=kernel)
    torch.testing.assert_close(out, ref_out, atol=1e-12, rtol=0)
    ref = _grads(ref_out, ref_h.unsqueeze(0), [x, *cell.parameters()])
    got = _grads(out, h_n, [x, *gru.parameters()])
    for e, g in zip(ref, got, strict=True):
        torch.testing.assert_close(g, e, atol=1e-12, rtol=0)


@pytest.mark.parametrize("kernel", KERNELS)
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
def test_fused_equals_nn_gru_property(kernel, i, h, layers, bidir, b, t, seed):
    torch.manual_seed(seed)
    gru = nn.GRU(i, h, layers, batch_first=True, bidirectional=bidir).double()
    x = torch.randn(b, t, i, dtype=torch.float64, requires_grad=True)
    _compare(gru, x, None, 1e-11, kernel)


@pytest.mark.parametrize("kernel", KERNELS)
def test_fused_only_gradients_of_used_outputs(kernel):
    """Using only ``h_n`` (or only the outputs) still gives nn.GRU's gradients."""
    torch.manual_seed(3)
    gru = nn.GRU(3, 4, 2).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    expected = torch.autograd.grad(gru(x)[1].sum(), [x, *gru.parameters()])
    got = torch.autograd.grad(fused_gru(gru, x, kernel=kernel)[1].sum(), [x, *gru.parameters()])
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e, atol=1e-12, rtol=0)
    expected = torch.autograd.grad(gru(x)[0][-1].sum(), [x, *gru.parameters()])  # outputs only
    got = torch.autograd.grad(fused_gru(gru, x, kernel=kernel)[0][-1].sum(), [x, *gru.parameters()])
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e, atol=1e-12, rtol=0)


def test_fused_refuses_other_modules():
    with pytest.raises(TypeError, match=r"expected an nn\.GRU, got LSTM"):
        fused_gru(nn.LSTM(2, 3), torch.randn(4, 1, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"expected x of shape \(B, T, 2\)"):
        fused_gru(nn.GRU(2, 3, batch_first=True), torch.randn(4, 1, 5))
    with pytest.raises(ValueError, match=r"kernel must be one of \('auto', 'python', 'compiled'\)"):
        fused_gru(nn.GRU(2, 3), torch.randn(4, 1, 2), kernel="cuda")
    with pytest.raises(ValueError, match=r"kernel=.compiled. runs on the CPU in float32"):
        fused_gru(nn.GRU(2, 3).half(), torch.randn(4, 1, 2).half(), kernel="compiled")


def _fused_node(tensor: Tensor) -> str | None:
    """The fused GRU node of ``tensor``'s autograd graph (``FusedGRULayer``: the Python kernel,
    ``CompiledGRULayer``: the C++ one), or None."""
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        name = type(node).__name__
        if "GRULayer" in name:
            return name.removesuffix("Backward")
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return None


@pytest.fixture
def kernel_env(request, monkeypatch):
    """The kernel that ``"auto"`` picks: ``python`` by ``MEDSEQ_FUSED_GRU_NO_COMPILE=1``."""
    kernel = request.param
    if kernel == "python":
        monkeypatch.setenv(fused_gru_compiled.NO_COMPILE_ENV, "1")
    else:
        monkeypatch.delenv(fused_gru_compiled.NO_COMPILE_ENV, raising=False)
    fused_gru_compiled.reset()
    yield kernel
    fused_gru_compiled.reset()


NODE = {"python": "FusedGRULayer", "compiled": "CompiledGRULayer"}


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
@pytest.mark.parametrize("kernel_env", KERNELS, indirect=True)
@pytest.mark.filterwarnings("ignore:fused GRU. the compiled kernel is unavailable")
def test_model_same_logits_and_gradients_with_fused_path(overrides, kernel_env):
    torch.manual_seed(0)
    model = build_model(ModelConfig(input_size=3, **({"hidden_size": 6} | overrides))).train()
    keys = list(model.state_dict())
    batch = _batch()
    results = []
    for mode in ("off", "on"):
        model.zero_grad()
        with fused_gru_mode(mode):
            logits = model(**batch)
        assert _fused_node(logits) == (NODE[kernel_env] if mode == "on" else None)
        logits.square().sum().backward()
        results.append((logits.detach(), [p.grad.clone() for p in model.parameters()]))
    (ref, ref_grads), (got, got_grads) = results
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)
    for e, g in zip(ref_grads, got_grads, strict=True):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-4)
    assert list(model.state_dict()) == keys  # same parameters, same names


@pytest.mark.parametrize("kernel_env", ["python"], indirect=True)
def test_no_compile_env_falls_back_with_one_warning(kernel_env):
    """``MEDSEQ_FUSED_GRU_NO_COMPILE=1``: "auto" keeps the Python kernel, warning once."""
    gru = nn.GRU(2, 3, batch_first=True)
    x = torch.randn(2, 4, 2)
    with pytest.warns(RuntimeWarning, match="MEDSEQ_FUSED_GRU_NO_COMPILE is set") as caught:
        nodes = {_fused_node(fused_gru(gru, x)[0]) for _ in range(3)}
    assert nodes == {"FusedGRULayer"}
    assert len([w for w in caught if "compiled kernel" in str(w.message)]) == 1
    with pytest.raises(fused_gru_compiled.CompiledKernelUnavailable, match="NO_COMPILE is set"):
        fused_gru(gru, x, kernel="compiled")


@pytest.mark.slow
def test_build_failure_warns_with_compiler_error(monkeypatch, tmp_path):
    """A compiler error (here: a broken source) falls back to Python, naming the error."""
    broken = tmp_path / "broken.cpp"
    broken.write_text("#include <torch/extension.h>\nint f() { return not_declared_here; }\n")
    monkeypatch.setattr(fused_gru_compiled, "SOURCE", broken)
    monkeypatch.setattr(fused_gru_compiled, "EXTENSION_NAME", "medseq_fused_gru_broken")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.delenv(fused_gru_compiled.NO_COMPILE_ENV, raising=False)
    fused_gru_compiled.reset()
    try:
        gru = nn.GRU(2, 3, batch_first=True)
        x = torch.randn(2, 4, 2)
        with pytest.warns(RuntimeWarning, match="not_declared_here"):
            out = fused_gru(gru, x)[0]
        assert _fused_node(out) == "FusedGRULayer"
        torch.testing.assert_close(out, gru(x)[0], atol=2e-5, rtol=0)
    finally:
        fused_gru_compiled.reset()


def test_selection_rules(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    gru = nn.GRU(2, 3, batch_first=True)
    x = torch.randn(2, 4, 2)
    assert current_mode() == "auto" and use_fused_gru(gru, x)  # the default
    with fused_gru_mode("off"):
        assert not use_fused_gru(gru, x)
    with fused_gru_mode("auto"):
        assert use_fused_gru(gru, x)
        assert not use_fused_gru(nn.LSTM(2, 3), x)
        with torch.no_grad():
            assert not use_fused_gru(gru, x)  # inference keeps nn.GRU
        assert not use_fused_gru(gru.half(), x.half())  # auto: float32/64 only
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not use_fused_gru(gru, x)  # nor under bf16 autocast
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
