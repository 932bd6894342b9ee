"""GRU-D: the vectorised model against a step-by-step transcription of the paper."""

from __future__ import annotations

import pytest
import torch
from model_batches import make_batch
from torch import nn

from medseq.models import GRUD, GRUCell, ModelConfig
from medseq.models.fused_gru_compiled import CompiledGRUDRecurrence
from medseq.models.fused_select import fused_gru_mode
from medseq.models.grud_recurrence import GRUDRecurrence, grud_loop, grud_recurrence


def _reference_grud(model: GRUD, values, mask, delta, lengths, static=None) -> torch.Tensor:
    """Che et al. (2018) one step at a time, as PyPOTS writes it; 'last' pooling."""
    c = model.config
    cell = GRUCell(c.recurrent_input_size, c.hidden_size)
    cell.load_state_dict(
        {k: getattr(model, k) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    )
    batch, n_steps, n_features = values.shape
    h = values.new_zeros(batch, c.hidden_size)
    x_last = model.x_mean.expand(batch, n_features).clone()
    states = []
    for t in range(n_steps):
        x, m, d = values[:, t], mask[:, t], delta[:, t]
        gamma_x = torch.exp(-torch.relu(d * model.gamma_x_weight + model.gamma_x_bias))
        gamma_h = torch.exp(-torch.relu(model.gamma_h(d)))
        x_hat = m * x + (1 - m) * (gamma_x * x_last + (1 - gamma_x) * model.x_mean)
        x_last = torch.where(m > 0, x, x_last)
        parts = [x_hat] + [m] * c.input_mask + [d] * c.input_delta
        h = cell(torch.cat(parts, dim=1), gamma_h * h)
        states.append(h)
    last = torch.stack(states, dim=1)[torch.arange(batch), lengths - 1]
    return model.head(last, static)


@pytest.mark.parametrize("input_delta", [False, True])
def test_matches_the_paper_step_by_step(input_delta):
    torch.manual_seed(0)
    config = ModelConfig(input_size=4, kind="grud", hidden_size=6, input_delta=input_delta)
    model = GRUD(config)
    batch = make_batch(static_size=0)
    expected = _reference_grud(model, **batch)
    torch.testing.assert_close(model(**batch), expected, atol=1e-5, rtol=0)


def test_values_at_unobserved_steps_are_never_read():
    """x_last is rebuilt from observed values: the featurizer's imputation cannot matter."""
    torch.manual_seed(0)
    model = GRUD(ModelConfig(input_size=4, kind="grud", hidden_size=6, pooling="mean"))
    batch = make_batch(static_size=0)
    other = dict(batch, values=torch.where(batch["mask"] > 0, batch["values"], 123.0))
    torch.testing.assert_close(model(**other), model(**batch), atol=1e-6, rtol=0)


#: GRU-D's two hand-written backward passes: Python, and compiled (csrc/fused_gru_step.cpp).
RECURRENCES = [GRUDRecurrence, CompiledGRUDRecurrence]


@pytest.mark.parametrize("recurrence", RECURRENCES, ids=lambda f: f.__name__)
def test_recurrence_gradcheck_float64(recurrence):
    torch.manual_seed(0)
    n_steps, batch, hidden = 4, 2, 3
    args = (
        torch.randn(n_steps, batch, 3 * hidden, dtype=torch.float64),
        torch.rand(n_steps, batch, hidden, dtype=torch.float64),
        torch.randn(3 * hidden, hidden, dtype=torch.float64),
        torch.randn(3 * hidden, dtype=torch.float64),
    )
    args = tuple(a.requires_grad_(True) for a in args)
    assert torch.autograd.gradcheck(recurrence.apply, args)


@pytest.mark.parametrize("recurrence", RECURRENCES, ids=lambda f: f.__name__)
def test_hand_backward_equals_autograd_through_the_loop(recurrence):
    torch.manual_seed(1)
    n_steps, batch, hidden = 7, 5, 8
    tensors = [
        torch.randn(n_steps, batch, 3 * hidden),
        torch.rand(n_steps, batch, hidden),
        torch.randn(3 * hidden, hidden) * 0.3,
        torch.randn(3 * hidden),
    ]
    fast = [t.clone().requires_grad_(True) for t in tensors]
    slow = [t.clone().requires_grad_(True) for t in tensors]
    out_fast, out_slow = recurrence.apply(*fast), grud_loop(*slow)
    torch.testing.assert_close(out_fast, out_slow, atol=1e-6, rtol=0)
    weights = torch.randn_like(out_slow)
    (out_fast * weights).sum().backward()
    (out_slow * weights).sum().backward()
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-5)


def test_inference_path_equals_training_path():
    torch.manual_seed(2)
    model = GRUD(ModelConfig(input_size=4, kind="grud", hidden_size=6, static_size=3))
    batch = make_batch()
    with torch.no_grad():
        no_grad = model(**batch)
    torch.testing.assert_close(model(**batch), no_grad, atol=1e-6, rtol=0)


def test_dispatch_uses_plain_ops_without_grad():
    gi, gamma = torch.randn(3, 2, 6), torch.rand(3, 2, 2)
    weight, bias = nn.Parameter(torch.randn(6, 2)), nn.Parameter(torch.randn(6))
    with fused_gru_mode("off"):  # the default: the Python loop, as before the compiled one
        assert grud_recurrence(gi, gamma, weight, bias).grad_fn.name() == "GRUDRecurrenceBackward"
    with fused_gru_mode("auto"):  # the switch on: the compiled loop
        out = grud_recurrence(gi, gamma, weight, bias)
        assert out.grad_fn.name() == "CompiledGRUDRecurrenceBackward"
        torch.testing.assert_close(out, grud_loop(gi, gamma, weight, bias), atol=1e-6, rtol=0)
        with torch.no_grad():
            assert grud_recurrence(gi, gamma, weight, bias).grad_fn is None


def test_trains_under_bf16_autocast_with_a_full_precision_recurrence():
    # autocast makes the input projection bf16; the loop's buffers need one dtype, so the
    # recurrence runs in float32 and the step gives the float32 recurrence's gradients
    torch.manual_seed(3)
    model = GRUD(ModelConfig(input_size=4, kind="grud", hidden_size=6, static_size=3))
    batch = make_batch()
    gi, gamma = torch.randn(3, 2, 6), torch.rand(3, 2, 2)
    weight, bias = nn.Parameter(torch.randn(6, 2)), nn.Parameter(torch.randn(6))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = grud_recurrence(gi.bfloat16(), gamma.bfloat16(), weight, bias)
        logits = model(**batch)
    assert out.dtype == torch.float32
    torch.testing.assert_close(
        out, grud_recurrence(gi.bfloat16().float(), gamma.bfloat16().float(), weight, bias)
    )
    logits.float().sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    with torch.no_grad():  # bf16 rounding of the projections only: close to float32
        torch.testing.assert_close(logits.float(), model(**batch), atol=0.05, rtol=0.05)


def test_before_the_first_observation_inputs_decay_to_x_mean():
    model = GRUD(ModelConfig(input_size=2, kind="grud", hidden_size=3))
    values = torch.tensor([[[5.0, 1.0], [0.0, 0.0], [0.0, 2.0]]])
    mask = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]])
    delta = torch.tensor([[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]])
    with torch.no_grad():
        model.gamma_x_weight.fill_(1.0)
        model.gamma_x_bias.zero_()
        model.x_mean.fill_(-1.0)
        x_hat, _ = model._impute(*(x.transpose(0, 1) for x in (values, mask, delta)))
    x_hat = x_hat.transpose(0, 1)[0]
    decay = torch.exp(torch.tensor(-1.0))
    assert x_hat[0].tolist() == [5.0, -1.0]  # feature 1 unseen: x_mean
    torch.testing.assert_close(x_hat[1, 0], 5.0 * decay - (1 - decay))  # decays towards x_mean
    assert x_hat[2, 1].item() == 2.0


def test_wrong_kind():
    with pytest.raises(ValueError, match=r"GRUD needs config\.kind='grud', got 'rnn_classifier'"):
        GRUD(ModelConfig(input_size=4))


def test_torch_export_gives_the_same_logits():
    torch.manual_seed(0)
    config = ModelConfig(input_size=4, kind="grud", hidden_size=5, pooling="attention")
    model = GRUD(config).eval()
    exported = torch.export.export(model, (), kwargs=make_batch(static_size=0))
    other = make_batch(static_size=0, seed=1)
    torch.testing.assert_close(exported.module()(**other), model(**other), atol=1e-6, rtol=0)


def test_hand_forward_matches_the_loop_when_gates_saturate():
    """tanh is computed as 2 sigmoid(2x) - 1 in the saving pass: exact at +-1 as well."""
    torch.manual_seed(3)
    n_steps, batch, hidden = 5, 3, 4
    gi = torch.randn(n_steps, batch, 3 * hidden) * 60.0  # pre-activations far into saturation
    gamma = torch.rand(n_steps, batch, hidden)
    weight, bias = torch.randn(3 * hidden, hidden), torch.randn(3 * hidden)
    fast = GRUDRecurrence.apply(gi, gamma, weight, bias)
    torch.testing.assert_close(fast, grud_loop(gi, gamma, weight, bias), atol=1e-6, rtol=0)
    assert fast.abs().max() <= 1.0
