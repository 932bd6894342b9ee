"""One contract over every model: shapes, padding, gradients, safetensors, determinism."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from model_batches import COMBOS, combo_id, make_batch, pad_batch, scramble_padding, tiny_config
from safetensors.torch import load_file, save_file

from medseq._imports import load_object
from medseq.models import build_model
from medseq.models.registry import MODEL_KINDS

pytestmark = pytest.mark.parametrize("combo", COMBOS, ids=combo_id)


def _model(combo, seed=0, **overrides):
    torch.manual_seed(seed)
    return build_model(tiny_config(combo, **overrides)).eval()


def test_output_shape_and_type(combo):
    model = _model(combo)
    assert isinstance(model, load_object(MODEL_KINDS[combo[0]][1]))
    logits = model(**make_batch(batch=3))
    assert logits.shape == (3, 2) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    extra=st.integers(1, 5),
    fill=st.sampled_from([0.0, 1.0, -3.5, 1e6, float("nan"), float("inf")]),
)
def test_appending_padding_changes_nothing(combo, seed, extra, fill):
    model = _model(combo)
    batch = make_batch(batch=4, seed=seed)
    expected = model(**batch)
    torch.testing.assert_close(model(**pad_batch(batch, extra, fill)), expected, atol=1e-5, rtol=0)


def test_padding_content_changes_nothing(combo):
    model = _model(combo)
    batch = make_batch(batch=4, n_steps=7, seed=3, lengths=[7, 1, 4, 6])
    expected = model(**batch)
    for seed in range(3):
        got = model(**scramble_padding(batch, seed))
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_gradients_reach_every_parameter(combo):
    model = _model(combo).train()
    batch = make_batch(batch=4, n_steps=7, seed=1)
    padded = pad_batch(batch, 2, float("nan"))
    model(**padded).square().sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_state_dict_round_trips_through_safetensors(combo, tmp_path):
    model = _model(combo, seed=0)
    path = tmp_path / "weights.safetensors"
    save_file(model.state_dict(), str(path))
    other = _model(combo, seed=1)
    batch = make_batch()
    assert not torch.equal(other(**batch), model(**batch))
    other.load_state_dict(load_file(str(path)))
    assert torch.equal(other(**batch), model(**batch))


def test_deterministic_under_a_fixed_seed(combo):
    batch = make_batch()
    first = _model(combo, seed=7, dropout=0.3).train()
    second = _model(combo, seed=7, dropout=0.3).train()
    torch.manual_seed(11)
    a = first(**batch)
    torch.manual_seed(11)
    b = second(**batch)
    assert torch.equal(a, b)


def test_padding_does_not_change_gradients(combo):
    batch = make_batch(batch=4, n_steps=6, seed=5)
    grads = []
    for inputs in (batch, pad_batch(batch, 3, float("nan"))):
        model = _model(combo)
        model(**inputs).sum().backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-5, rtol=0, msg=name)
